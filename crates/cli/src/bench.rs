//! `portcullis bench`: the benchmarks behind the figures in docs/benchmarks.md. Each one builds
//! its own data in a temporary SQLite file or a scratch PostgreSQL database, measures, checks
//! that nothing was lost, and cleans up.

use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use portcullis_api::model::{
    BuiltinRole, ClientSettings, GrantType, PrincipalRef, RoleRef, Scope, ServicePrincipal,
};
use portcullis_api::roles::CreateRoleAssignment;
use portcullis_api::service_principals::{CreateApiKey, CreateServicePrincipal};
use portcullis_api::tenants::IssuedApiKey;
use portcullis_api::users::{CreateUser, SetPassword};
use portcullis_core::audit::{Actor, ChainVerifier, NewAuditEvent, Origin, Outcome, Target};
use portcullis_core::secrets::Kek;
use portcullis_server::{Server, Settings};
use portcullis_store::scratch::ScratchDatabase;

mod access;
mod conditional;
mod console;
mod scale;

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Append audit events through the group-commit writer; report events per second.
    Audit(AuditBench),
    /// Start a server process and load its admin API: user creation, reads, memory.
    Api(ApiBench),
    /// Password sign-ins per second over HTTP, against the bound set by Argon2id's cost.
    SignIn(SignInBench),
    /// AuthZEN decisions per second over HTTP, one at a time and in batches.
    Access(access::AccessBench),
    /// Several server processes on one PostgreSQL database: how long a change made through
    /// one takes to be decided on every other.
    Propagation(access::PropagationBench),
    /// Conditional access policy evaluation in process: a tenant's worth of policies and named
    /// locations, each request timed.
    Conditional(conditional::ConditionalBench),
    /// The admin console's user list, searches and user page in a tenant of many users, one
    /// request at a time.
    Console(console::ConsoleBench),
    /// A tenant of bench/engine's size loaded straight through the store, then the server
    /// measured on it: taking the load in, start-up to the first decision, search pages, writes
    /// as deltas; with --nodes, propagation to other nodes and sustained churn.
    Scale(scale::ScaleBench),
}

#[derive(clap::Args)]
pub struct Backend {
    /// Benchmark on this PostgreSQL server (a scratch database is created there and dropped
    /// afterwards) instead of an embedded SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

#[derive(clap::Args)]
pub struct AuditBench {
    #[command(flatten)]
    backend: Backend,
    /// Events appended per run.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Concurrent writers, each appending one event at a time and waiting for its commit.
    #[arg(long, default_value_t = 512)]
    writers: usize,
    /// Runs; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(clap::Args)]
pub struct ApiBench {
    #[command(flatten)]
    backend: Backend,
    /// Users created over HTTP.
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// GET /v1/users/{id} requests after the users exist.
    #[arg(long, default_value_t = 100_000)]
    reads: usize,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

#[derive(clap::Args)]
pub struct SignInBench {
    #[command(flatten)]
    backend: Backend,
    /// Sign-ins to perform.
    #[arg(long, default_value_t = 1_000)]
    sign_ins: usize,
    /// Concurrent browsers, each signing in its own user again and again.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// After a run with no conditional access policies, create this many enabled ones (none
    /// of which applies to the benchmark's users) and run again, to compare.
    #[arg(long, default_value_t = 0)]
    policies: usize,
    /// Named locations the policies refer to.
    #[arg(long, default_value_t = 1_000)]
    locations: usize,
}

pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    if let BenchCommand::Conditional(bench) = &command {
        let (_, _, one) = one_verification()?;
        conditional::conditional(bench, one)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (backend, postgres) = match &command {
        BenchCommand::Audit(bench) => ("audit", bench.backend.postgres.clone()),
        BenchCommand::Api(bench) => ("api", bench.backend.postgres.clone()),
        BenchCommand::SignIn(bench) => ("sign-in", bench.backend.postgres.clone()),
        BenchCommand::Access(bench) => ("access", bench.backend.postgres.clone()),
        BenchCommand::Propagation(bench) => ("propagation", Some(bench.postgres.clone())),
        BenchCommand::Console(bench) => ("console", bench.backend.postgres.clone()),
        BenchCommand::Scale(bench) => ("scale", bench.backend.postgres.clone()),
        BenchCommand::Conditional(_) => unreachable!("answered above"),
    };
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let scratch = match &postgres {
        Some(url) => Some(
            ScratchDatabase::create(url)
                .await
                .context("cannot create a scratch database")?,
        ),
        None => None,
    };
    let database_url = scratch.as_ref().map_or_else(
        || format!("sqlite://{}", dir.path().join("bench.db").display()),
        |s| s.url.clone(),
    );
    let store_name = if scratch.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    eprintln!("bench {backend}: {store_name} store");
    let result = match command {
        BenchCommand::Audit(bench) => audit(&bench, dir.path(), &database_url, store_name).await,
        BenchCommand::Api(bench) => api(&bench, dir.path(), &database_url, store_name).await,
        BenchCommand::SignIn(bench) => sign_in(&bench, dir.path(), &database_url, store_name).await,
        BenchCommand::Access(bench) => {
            access::access(&bench, dir.path(), &database_url, store_name).await
        }
        BenchCommand::Conditional(_) => Ok(()),
        BenchCommand::Console(bench) => {
            console::console(&bench, dir.path(), &database_url, store_name).await
        }
        BenchCommand::Propagation(bench) => {
            access::propagation(&bench, dir.path(), &database_url).await
        }
        BenchCommand::Scale(bench) => {
            scale::scale(&bench, dir.path(), &database_url, store_name).await
        }
    };
    if let Some(scratch) = scratch {
        scratch.drop_database().await?;
    }
    result.map(|()| ExitCode::SUCCESS)
}

async fn audit(
    bench: &AuditBench,
    dir: &Path,
    database_url: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    if bench.events == 0 || bench.writers == 0 || bench.runs == 0 {
        bail!("--events, --writers and --runs must be at least 1");
    }
    let settings = Settings {
        data_dir: Some(dir.to_owned()),
        database_url: Some(database_url.to_owned()),
        max_connections: Some(8),
        ..Settings::default()
    };
    let server = Server::prepare(settings.resolve()?, Some(Kek::generate_base64()?)).await?;
    let state = server.state().clone();
    let tenant = state.operator_tenant;
    let mut rates = Vec::with_capacity(bench.runs);
    for run in 1..=bench.runs {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let writers: Vec<_> = (0..bench.writers)
            .map(|writer| {
                let sink = state.audit.clone();
                let next = next.clone();
                let total = bench.events;
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        sink.append(sample_event(tenant, writer)).await?;
                    }
                    Ok::<_, portcullis_store::StoreError>(())
                })
            })
            .collect();
        for writer in writers {
            writer.await??;
        }
        let elapsed = started.elapsed();
        let rate = bench.events as f64 / elapsed.as_secs_f64();
        println!(
            "audit append  {store_name:<10} run {run}: {} events in {:.2} s = {rate:.0} events/s",
            bench.events,
            elapsed.as_secs_f64()
        );
        rates.push(rate);
    }
    // Every acknowledged event must be in one unbroken chain.
    let mut verifier = ChainVerifier::default();
    loop {
        let records = state
            .store
            .audit_chain(tenant, verifier.verified_through(), 5_000)
            .await?;
        if records.is_empty() {
            break;
        }
        for record in &records {
            verifier
                .push(record)
                .map_err(|e| anyhow::anyhow!("the chain is broken: {e}"))?;
        }
    }
    let expected_at_least = (bench.events * bench.runs) as i64;
    if verifier.verified_through() < expected_at_least {
        bail!(
            "only {} records in the chain, expected at least {expected_at_least}",
            verifier.verified_through()
        );
    }
    println!(
        "audit append  {store_name:<10} median of {}: {:.0} events/s ({} writers; chain of {} records verified)",
        bench.runs,
        median(&mut rates),
        bench.writers,
        verifier.verified_through()
    );
    state.store.close().await;
    Ok(())
}

fn sample_event(tenant: portcullis_core::TenantId, writer: usize) -> NewAuditEvent {
    NewAuditEvent {
        tenant_id: tenant,
        at: time::OffsetDateTime::now_utc(),
        actor: Actor::anonymous(),
        action: "authn.api_key".into(),
        target: Some(Target::new("api_key", format!("pcs_{writer:016x}"))),
        outcome: Outcome::Failure,
        reason: Some("unknown API key".into()),
        origin: Origin {
            source_ip: Some("192.0.2.10".into()),
            user_agent: Some("portcullis-bench".into()),
            request_id: Some(uuid::Uuid::now_v7().to_string()),
        },
        details: json!({}),
    }
}

/// A `portcullis serve` child process on a random port.
struct ServerProcess {
    child: tokio::process::Child,
    base: String,
    admin_key: String,
}

impl ServerProcess {
    /// The first node of a new database: it bootstraps it and prints the administrator's key.
    async fn start(dir: &Path, database_url: &str) -> anyhow::Result<Self> {
        let kek = Kek::generate_base64()?;
        let (node, admin_key) = Self::node(dir, database_url, kek.expose_secret(), &[]).await?;
        let admin_key = admin_key.context("the server printed no bootstrap key")?;
        Ok(Self { admin_key, ..node })
    }

    /// A node of the database at `database_url`, sealing secrets with `kek` (every node of
    /// one database shares it), started with `extra` arguments; and the bootstrap key if this
    /// node bootstrapped the database.
    async fn node(
        dir: &Path,
        database_url: &str,
        kek: &str,
        extra: &[&str],
    ) -> anyhow::Result<(Self, Option<String>)> {
        let exe = std::env::current_exe().context("cannot find the portcullis binary")?;
        // PORTCULLIS_BENCH_NODE_LOG=info shows the nodes' logs (snapshot builds and where
        // their time went, …) on the benchmark's standard error.
        let log = std::env::var("PORTCULLIS_BENCH_NODE_LOG").ok();
        let mut child = tokio::process::Command::new(exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--log"])
            .arg(log.as_deref().unwrap_or("warn"))
            .arg("--data-dir")
            .arg(dir)
            .args(["--database-url", database_url])
            .args(extra)
            .env("PORTCULLIS_KEK", kek)
            .stdout(Stdio::piped())
            .stderr(if log.is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the server")?;
        let stdout = child.stdout.take().context("no server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut admin_key = None;
        while let Some(line) = lines.next_line().await? {
            let line = line.trim();
            if line.starts_with("pcs_") {
                admin_key = Some(line.to_owned());
            }
            if let Some(base) = line.strip_prefix("portcullis: listening on ") {
                let node = Self {
                    child,
                    base: base.to_owned(),
                    admin_key: String::new(),
                };
                return Ok((node, admin_key));
            }
        }
        bail!("the server exited before it listened")
    }

    /// Resident set size in MiB, from /proc.
    fn rss_mib(&self) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("cannot read /proc (resident size is measured on Linux only)")?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc status")?;
        Ok(kib / 1024.0)
    }
}

/// Latencies of one phase, and its throughput.
struct Phase {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Phase {
    fn report(mut self, name: &str, store_name: &str) {
        self.latencies.sort_unstable();
        let at = |p: f64| {
            let index = ((self.latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
            self.latencies[index.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
        };
        println!(
            "{name:<13} {store_name:<10} {} requests in {:.2} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            self.latencies.len(),
            self.elapsed.as_secs_f64(),
            self.latencies.len() as f64 / self.elapsed.as_secs_f64(),
            at(0.50),
            at(0.99)
        );
    }
}

/// Sends `total` requests built by `request(i)` over `connections` concurrent workers; every
/// answer must have status `expect`. Returns the latencies and the answers' JSON bodies.
async fn load<F>(
    http: &reqwest::Client,
    total: usize,
    connections: usize,
    expect: u16,
    request: F,
) -> anyhow::Result<(Phase, Vec<serde_json::Value>)>
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let progress = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (http, next, request, progress) = (
                http.clone(),
                next.clone(),
                request.clone(),
                progress.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut bodies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<_, anyhow::Error>((latencies, bodies));
                    }
                    let sent = Instant::now();
                    let response = request(&http, i).send().await?;
                    let status = response.status().as_u16();
                    let body = response.bytes().await?;
                    latencies.push(sent.elapsed());
                    if status != expect {
                        bail!(
                            "request {i} answered {status}: {}",
                            String::from_utf8_lossy(&body)
                        );
                    }
                    bodies.push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
                    progress.inc(1);
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut bodies = Vec::with_capacity(total);
    for worker in workers {
        let (l, b) = worker.await??;
        latencies.extend(l);
        bodies.extend(b);
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    Ok((Phase { latencies, elapsed }, bodies))
}

async fn api(
    bench: &ApiBench,
    dir: &Path,
    database_url: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    if bench.users == 0 || bench.reads == 0 || bench.connections == 0 {
        bail!("--users, --reads and --connections must be at least 1");
    }
    let server = ServerProcess::start(dir, database_url).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(bench.connections)
        .build()?;
    http.get(format!("{}/readyz", server.base))
        .send()
        .await?
        .error_for_status()?;
    // Let start-up allocations settle before reading the idle size.
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "memory        {store_name:<10} idle server: {:.1} MiB resident",
        server.rss_mib()?
    );

    let ids = create_users(
        &http,
        &server,
        bench.users,
        bench.connections,
        store_name,
        |i| CreateUser {
            user_name: format!("bench-user-{i}"),
            email: Some(format!("bench-user-{i}@example.com")),
            ..CreateUser::default()
        },
    )
    .await?;

    let (base, key) = (server.base.clone(), server.admin_key.clone());
    let picks = ids.clone();
    let (reads, _) = load(
        &http,
        bench.reads,
        bench.connections,
        200,
        move |http, i| {
            // A fixed stride through the ids: every read hits a different user, repeatably.
            let id = &picks[(i * 7919) % picks.len()];
            http.get(format!("{base}/v1/users/{id}")).bearer_auth(&key)
        },
    )
    .await?;
    reads.report("get user", store_name);
    token_against_key(&http, &server, bench, &ids, store_name).await?;
    println!(
        "memory        {store_name:<10} after {} users and {} reads: {:.1} MiB resident",
        bench.users,
        bench.reads,
        server.rss_mib()?
    );
    Ok(())
}

/// Creates `count` users over the admin API, `user(i)` each, with `connections` workers; reports
/// the rate and returns their ids in the order made.
async fn create_users(
    http: &reqwest::Client,
    server: &ServerProcess,
    count: usize,
    connections: usize,
    store_name: &str,
    user: fn(usize) -> CreateUser,
) -> anyhow::Result<Arc<Vec<String>>> {
    let (base, key) = (server.base.clone(), server.admin_key.clone());
    let (created, bodies) = load(http, count, connections, 201, move |http, i| {
        http.post(format!("{base}/v1/users"))
            .bearer_auth(&key)
            .json(&user(i))
    })
    .await?;
    created.report("create user", store_name);
    let ids: Vec<String> = bodies
        .iter()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect();
    if ids.len() != count {
        bail!("{} of {count} creations returned an id", ids.len());
    }
    Ok(Arc::new(ids))
}

/// The same reads by one service principal (`security_reader`), alternately with its API key
/// and with an access token it got for the admin API (`client_credentials`), twice each: the
/// token path must not be slower than the key path.
async fn token_against_key(
    http: &reqwest::Client,
    server: &ServerProcess,
    bench: &ApiBench,
    ids: &Arc<Vec<String>>,
    store_name: &str,
) -> anyhow::Result<()> {
    let base = server.base.clone();
    let admin = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth(&server.admin_key)
    };
    let discovery: serde_json::Value = http
        .get(format!(
            "{base}/t/operator/.well-known/openid-configuration"
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let resource = discovery["portcullis_admin_api_resource"]
        .as_str()
        .context("no admin API resource in discovery")?
        .to_owned();
    let reader: ServicePrincipal = admin(reqwest::Method::POST, "/v1/service-principals")
        .json(&CreateServicePrincipal {
            name: "bench-reader".into(),
            ..CreateServicePrincipal::default()
        })
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = reader.id;
    admin(reqwest::Method::POST, "/v1/role-assignments")
        .json(&CreateRoleAssignment {
            principal: PrincipalRef::service_principal(id),
            role: RoleRef::Builtin(BuiltinRole::SecurityReader),
            scope: Some(Scope::Tenant),
            starts_at: None,
            ends_at: None,
        })
        .send()
        .await?
        .error_for_status()?;
    admin(
        reqwest::Method::PUT,
        &format!("/v1/service-principals/{id}/oauth-client"),
    )
    .json(&ClientSettings {
        grant_types: vec![GrantType::ClientCredentials],
        scopes: vec!["bench".into()],
        resources: vec![resource.clone()],
        access_token_seconds: 86400,
        ..ClientSettings::default()
    })
    .send()
    .await?
    .error_for_status()?;
    let key: IssuedApiKey = admin(
        reqwest::Method::POST,
        &format!("/v1/service-principals/{id}/api-keys"),
    )
    .json(&CreateApiKey::default())
    .send()
    .await?
    .error_for_status()?
    .json()
    .await?;
    let secret = key.secret;
    let tokens: serde_json::Value = http
        .post(format!("{base}/t/operator/oauth/token"))
        .basic_auth(id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", resource.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = tokens["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned();
    for round in 1..=2 {
        for (label, credential) in [("get (key)", &secret), ("get (token)", &token)] {
            let (base, credential, picks) = (base.clone(), credential.clone(), ids.clone());
            let (reads, _) = load(http, bench.reads, bench.connections, 200, move |http, i| {
                let id = &picks[(i * 7919) % picks.len()];
                http.get(format!("{base}/v1/users/{id}"))
                    .bearer_auth(&credential)
            })
            .await?;
            reads.report(&format!("{label} {round}"), store_name);
        }
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}

const BENCH_PASSWORD: &str = "violet tugboat parsley orbit";

/// The server's password hashing, a stored hash, and the median time of one verification.
fn one_verification() -> anyhow::Result<(portcullis_core::password::PasswordHashing, String, f64)> {
    // The bound: every core hashing back to back with the server's default parameters.
    let hashing = portcullis_core::password::PasswordHashing::new(
        portcullis_core::password::DEFAULT_MEMORY_KIB,
        portcullis_core::password::DEFAULT_ITERATIONS,
    )?;
    let stored = hashing.hash(&secrecy::SecretString::from(BENCH_PASSWORD.to_owned()))?;
    let mut times: Vec<f64> = (0..15)
        .map(|_| {
            let started = Instant::now();
            let _ = hashing.verify(
                &secrecy::SecretString::from(BENCH_PASSWORD.to_owned()),
                &stored,
            );
            started.elapsed().as_secs_f64()
        })
        .collect();
    let one = median(&mut times);
    Ok((hashing, stored, one))
}

async fn sign_in(
    bench: &SignInBench,
    dir: &Path,
    database_url: &str,
    store_name: &str,
) -> anyhow::Result<()> {
    if bench.sign_ins == 0 || bench.connections == 0 {
        bail!("--sign-ins and --connections must be at least 1");
    }
    let (hashing, stored, one_hash) = one_verification()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let bound = cores as f64 / one_hash;
    println!(
        "argon2id      m={} KiB t={}: one verification {:.1} ms (median of 15) -> bound {bound:.1} sign-ins/s on {cores} cores",
        portcullis_core::password::DEFAULT_MEMORY_KIB,
        portcullis_core::password::DEFAULT_ITERATIONS,
        one_hash * 1000.0
    );
    // What the cores reach hashing together, in-process: memory-hard hashes share caches and
    // memory bandwidth, so this is below the bound before any HTTP or storage work.
    let together = Instant::now();
    let per_core = 30;
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                for _ in 0..per_core {
                    let _ = hashing.verify(
                        &secrecy::SecretString::from(BENCH_PASSWORD.to_owned()),
                        &stored,
                    );
                }
            });
        }
    });
    let ceiling = (cores * per_core) as f64 / together.elapsed().as_secs_f64();
    println!(
        "argon2id      {cores} threads hashing at once, in-process: {ceiling:.1} verifications/s = {:.0}% of the bound",
        ceiling / bound * 100.0
    );

    let server = ServerProcess::start(dir, database_url).await?;
    let admin = reqwest::Client::new();
    let mut users = Vec::with_capacity(bench.connections);
    for i in 0..bench.connections {
        let created: serde_json::Value = admin
            .post(format!("{}/v1/users", server.base))
            .bearer_auth(&server.admin_key)
            .json(&CreateUser {
                user_name: format!("signer-{i}"),
                ..CreateUser::default()
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["id"].as_str().context("no user id")?.to_owned();
        admin
            .put(format!("{}/v1/users/{id}/password", server.base))
            .bearer_auth(&server.admin_key)
            .json(&SetPassword {
                password: BENCH_PASSWORD.into(),
                must_change: Some(false),
            })
            .send()
            .await?
            .error_for_status()?;
        users.push(format!("signer-{i}"));
    }

    let rate = sign_in_load(bench, &server.base, &users, store_name).await?;
    println!(
        "sign-in       {store_name:<10} {rate:.1} password sign-ins/s = {:.0}% of the bound ({bound:.1}/s), {:.0}% of the in-process ceiling",
        rate / bound * 100.0,
        rate / ceiling * 100.0
    );
    if bench.policies > 0 {
        add_policies(bench, &server).await?;
        let with = sign_in_load(bench, &server.base, &users, store_name).await?;
        println!(
            "sign-in       {store_name:<10} {with:.1} password sign-ins/s with {} enabled policies and {} named locations = {:+.1}% against none",
            bench.policies,
            bench.locations,
            (with / rate - 1.0) * 100.0
        );
    }
    Ok(())
}

/// Creates the generated named locations and enabled policies over the admin API, after an
/// emergency access account (the policies include blocks of all users in some places).
async fn add_policies(bench: &SignInBench, server: &ServerProcess) -> anyhow::Result<()> {
    let admin = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        admin
            .post(format!("{}{path}", server.base))
            .bearer_auth(&server.admin_key)
            .json(&body)
            .send()
    };
    let glass: serde_json::Value = post("/v1/users", json!({"user_name": "emergency"}))
        .await?
        .error_for_status()?
        .json()
        .await?;
    admin
        .put(format!("{}/v1/access-policy-settings", server.base))
        .bearer_auth(&server.admin_key)
        .json(&json!({"emergency_accounts": [glass["id"]]}))
        .send()
        .await?
        .error_for_status()?;
    let mut dice = conditional::Dice::new(0x5eed);
    let locations = conditional::locations(bench.locations.max(1), &mut dice);
    let policies = conditional::policies(bench.policies, &locations, &mut dice);
    let progress = ProgressBar::new((locations.len() + policies.len()) as u64);
    // The server gives each location its own id; the policies are rewritten to name those.
    let mut renamed = Vec::with_capacity(locations.len());
    for location in &locations {
        let created: serde_json::Value = post("/v1/named-locations", json!(location))
            .await?
            .error_for_status()?
            .json()
            .await?;
        let given = created["id"].as_str().unwrap_or_default().to_owned();
        renamed.push((location.id.to_string(), given));
        progress.inc(1);
    }
    for policy in &policies {
        let mut text = serde_json::to_string(policy)?;
        for (generated, given) in &renamed {
            text = text.replace(generated.as_str(), given);
        }
        let body: serde_json::Value = serde_json::from_str(&text)?;
        post("/v1/access-policies", body)
            .await?
            .error_for_status()?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    Ok(())
}

/// Signs the users in again and again from as many browsers; reports and returns sign-ins/s.
async fn sign_in_load(
    bench: &SignInBench,
    base: &str,
    users: &[String],
    store_name: &str,
) -> anyhow::Result<f64> {
    let next = Arc::new(AtomicUsize::new(0));
    let progress = ProgressBar::new(bench.sign_ins as u64);
    let started = Instant::now();
    let browsers: Vec<_> = users
        .iter()
        .cloned()
        .map(|user| {
            let (base, next, progress, total) = (
                base.to_owned(),
                next.clone(),
                progress.clone(),
                bench.sign_ins,
            );
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?;
                let page = http
                    .get(format!("{base}/t/operator/sign-in"))
                    .send()
                    .await?;
                let cookie = page
                    .headers()
                    .get("set-cookie")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .context("no CSRF cookie")?
                    .to_owned();
                let csrf = cookie
                    .split_once('=')
                    .map(|(_, v)| v.to_owned())
                    .unwrap_or_default();
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let sent = Instant::now();
                    let response = http
                        .post(format!("{base}/t/operator/sign-in"))
                        .header("cookie", &cookie)
                        .form(&[
                            ("csrf", csrf.as_str()),
                            ("user_name", &user),
                            ("password", BENCH_PASSWORD),
                        ])
                        .send()
                        .await?;
                    if response.status() != reqwest::StatusCode::SEE_OTHER {
                        bail!("sign-in answered {}", response.status());
                    }
                    latencies.push(sent.elapsed());
                    progress.inc(1);
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(bench.sign_ins);
    for browser in browsers {
        latencies.extend(browser.await??);
    }
    let phase = Phase {
        latencies,
        elapsed: started.elapsed(),
    };
    progress.finish_and_clear();
    let rate = phase.latencies.len() as f64 / phase.elapsed.as_secs_f64();
    phase.report("sign-in", store_name);
    Ok(rate)
}
