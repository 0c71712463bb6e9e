//! The Portcullis HTTP service. `Server::prepare` opens and migrates the store, unlocks the
//! server secrets with the key-encryption key and bootstraps an empty database; `Server::serve`
//! answers requests until told to stop. Handlers stay thin: rules live in `portcullis-core`,
//! SQL in `portcullis-store`.

pub mod auth;
mod cache;
pub mod conditional;
pub mod config;
pub mod engine;
pub mod error;
pub mod extract;
pub mod geo;
pub mod lifecycle;
pub mod mail;
pub mod oauth;
mod pages;
pub mod risk;
pub mod routes;
pub mod state;
pub mod throttle;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::{ExposeSecret, SecretString};
use tokio::net::TcpListener;

use portcullis_core::audit::{Actor, Origin};
use portcullis_core::names::parse_slug;
use portcullis_core::passkey::RelyingParty;
use portcullis_core::password::PasswordHashing;
use portcullis_core::secrets::{Kek, SecretHasher, random_bytes};
use portcullis_core::time_util::{Clock, SystemClock};
use portcullis_store::{CreatedTenant, Store, StoreError, WriteContext, redact_url};

pub use config::{Config, LogFormat, Settings};
use state::{AppState, Shared};
use throttle::FailureThrottle;

/// Name of the server secret that peppers the API-key hash.
const KEY_PEPPER: &str = "api-key-pepper";
/// File in the data directory holding the first administrator's key.
pub const BOOTSTRAP_FILE: &str = "bootstrap-credential";
/// File in the data directory holding the development KEK.
pub const DEV_KEK_FILE: &str = "kek";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no key-encryption key: production mode needs PORTCULLIS_KEK or kek_file (generate one with `portcullis kek generate`)"
    )]
    KekRequired,
    #[error("the key-encryption key {0} is not valid: {1}")]
    BadKek(String, portcullis_core::secrets::SecretError),
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("cannot set up password hashing: {0}")]
    Password(String),
    #[error("cannot set up the outgoing HTTP client: {0}")]
    HttpClient(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ServerError + '_ {
    move |source| ServerError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where the KEK came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KekSource {
    Environment,
    File,
    GeneratedForDevelopment,
    ExistingDevelopmentFile,
}

/// Loads the KEK: `PORTCULLIS_KEK` (the key itself), else the configured key file, else — only
/// outside production — a development key kept in the data directory.
pub fn load_kek(
    config: &Config,
    from_env: Option<SecretString>,
) -> Result<(Kek, KekSource), ServerError> {
    if let Some(text) = from_env {
        let kek = Kek::from_base64(&text)
            .map_err(|e| ServerError::BadKek("in PORTCULLIS_KEK".into(), e))?;
        return Ok((kek, KekSource::Environment));
    }
    if let Some(path) = &config.kek_file {
        let text = SecretString::from(std::fs::read_to_string(path).map_err(io_error(path))?);
        let kek = Kek::from_base64(&text)
            .map_err(|e| ServerError::BadKek(format!("in {}", path.display()), e))?;
        return Ok((kek, KekSource::File));
    }
    if config.production {
        return Err(ServerError::KekRequired);
    }
    let path = config.data_dir.join(DEV_KEK_FILE);
    let (text, source) = match std::fs::read_to_string(&path) {
        Ok(text) => (SecretString::from(text), KekSource::ExistingDevelopmentFile),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let generated =
                Kek::generate_base64().map_err(|e| ServerError::BadKek("generated".into(), e))?;
            write_private_file(&path, generated.expose_secret().as_bytes())?;
            (generated, KekSource::GeneratedForDevelopment)
        }
        Err(e) => return Err(io_error(&path)(e)),
    };
    let kek = Kek::from_base64(&text)
        .map_err(|e| ServerError::BadKek(format!("in {}", path.display()), e))?;
    Ok((kek, source))
}

/// Writes a file only its owner can read (0600), refusing to overwrite an existing one.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), ServerError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error(path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

/// Creates the data directory, if missing, readable by its owner only (0700): it holds the
/// embedded database, and in development the KEK. An existing directory is left as it is.
fn create_private_dir(path: &Path) -> Result<(), ServerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path).map_err(io_error(path))
}

/// Installs the process-wide metrics recorder once and returns its handle.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed, in which case ours just stays unused.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Passkey ceremonies one source address may start per minute: far above a person's needs.
const PASSKEY_STARTS_PER_MINUTE: u32 = 30;

/// What the first start of an empty database created.
pub struct Bootstrapped {
    pub created: CreatedTenant,
    pub secret: SecretString,
    /// Where the credential was also written, if it could be.
    pub file: Option<PathBuf>,
}

/// A server ready to answer requests.
pub struct Server {
    state: AppState,
    pub kek_source: KekSource,
    pub bootstrapped: Option<Bootstrapped>,
}

impl Server {
    /// Opens the store, runs migrations, unlocks server secrets and bootstraps an empty database.
    pub async fn prepare(
        config: Config,
        kek_from_env: Option<SecretString>,
    ) -> Result<Self, ServerError> {
        Self::prepare_with_clock(config, kek_from_env, Arc::new(SystemClock)).await
    }

    /// `prepare` with the clock every expiry is judged by (tests pass one they can advance).
    pub async fn prepare_with_clock(
        config: Config,
        kek_from_env: Option<SecretString>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        create_private_dir(&config.data_dir)?;
        let (kek, kek_source) = load_kek(&config, kek_from_env)?;
        tracing::info!(database = %redact_url(&config.database_url), "opening the store");
        let store = Store::connect(&config.database_url, config.max_connections).await?;
        store.migrate().await?;
        let pepper = store
            .server_secret(KEY_PEPPER, &kek, || Ok(random_bytes::<32>()?.to_vec()))
            .await?;
        let hasher = SecretHasher::new(pepper.expose_secret());

        let bootstrapped = bootstrap(&store, &hasher, &config, clock.now()).await?;
        let operator = store
            .operator_tenant()
            .await?
            .ok_or_else(|| StoreError::Corrupt("no operator tenant".into()))?;
        let passwords =
            PasswordHashing::new(config.password_memory_kib, config.password_iterations)
                .map_err(|e| ServerError::Password(e.to_string()))?;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let relying_party = match RelyingParty::new(&config.public_url) {
            Ok(rp) => Some(rp),
            Err(e) => {
                tracing::warn!(error = %e, "passkeys are off");
                None
            }
        };
        let sign_in_accounts = throttle::Backoff::new(store.clone(), "account", hasher.clone());
        let sign_in_addresses = throttle::Backoff::new(store.clone(), "address", hasher.clone());
        let snapshot_budget =
            usize::try_from(config.authz_memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        let state = AppState::new(Shared {
            audit: store.audit_sink(),
            store,
            hasher,
            operator_tenant: operator.id,
            failures: FailureThrottle::new(config.auth_failures_per_minute),
            config,
            clock,
            metrics: metrics_handle(),
            passwords,
            kek: Arc::new(kek),
            password_permits: tokio::sync::Semaphore::new(cores),
            sign_in_accounts,
            sign_in_addresses,
            throttled: throttle::ThrottledAttempts::default(),
            workload_sign_ins: throttle::Tally::default(),
            relying_party,
            passkey_starts: FailureThrottle::new(PASSKEY_STARTS_PER_MINUTE),
            signing_keys: oauth::SigningKeys::default(),
            token_caches: oauth::TokenCaches::default(),
            engines: engine::Engines::new(snapshot_budget),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| ServerError::HttpClient(e.to_string()))?,
        });
        Ok(Server {
            state,
            kek_source,
            bootstrapped,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves on `listener` until `shutdown` completes, then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let address = listener
            .local_addr()
            .map_err(io_error(Path::new("listener")))?;
        let sweeper = tokio::spawn(lifecycle::run(self.state.clone()));
        let tail = tokio::spawn(engine::run(self.state.clone()));
        let sender = self.state.config.mail.clone().map(|settings| {
            tracing::info!(smtp = %settings.describe(), "mail is delivered");
            self.state.store.enable_mail();
            tokio::spawn(mail::run(self.state.clone(), settings))
        });
        let app =
            routes::app(self.state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(%address, "serving");
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        sweeper.abort();
        tail.abort();
        if let Some(sender) = sender {
            sender.abort();
        }
        if let Err(error) = lifecycle::record_throttled(&self.state).await {
            tracing::warn!(%error, "could not record the last throttled attempts");
        }
        if let Err(error) = lifecycle::record_workload_sign_ins(&self.state).await {
            tracing::warn!(%error, "could not record the last workload sign-ins");
        }
        self.state.store.close().await;
        served.map_err(io_error(Path::new("listener")))
    }
}

/// A recovery administrator made by `Server::recover`.
pub struct Recovered {
    pub tenant: String,
    pub service_principal: portcullis_core::identity::ServicePrincipal,
    pub key: portcullis_core::identity::ApiKey,
    pub secret: SecretString,
}

/// How long a recovery key works: long enough to restore an administrator, no longer.
const RECOVERY_KEY_HOURS: i64 = 24;

impl Server {
    /// Gives the tenant named `tenant` a new administrator with a key that works for a day,
    /// recorded as a recovery in the tenant's audit trail. Meant for `portcullis recover`,
    /// run with the server's own database and key-encryption key: there is no network API for
    /// it, so nobody who can merely reach the server can call it.
    pub async fn recover(&self, tenant: &str) -> Result<Recovered, ServerError> {
        let store = &self.state.store;
        let tenant = store.tenant_by_name(tenant).await?;
        let now = self.state.clock.now();
        let generated =
            portcullis_core::secrets::GeneratedApiKey::generate().map_err(StoreError::Secret)?;
        let record = portcullis_store::NewApiKey {
            prefix: generated.prefix.clone(),
            secret_hash: self.state.hasher.hash(generated.secret_bytes()),
            name: Some("recovery".into()),
            expires_at: Some(now + time::Duration::hours(RECOVERY_KEY_HOURS)),
        };
        let stamp = now.unix_timestamp();
        let name = parse_slug("name", &format!("recovery-admin-{stamp}"))
            .map_err(|e| ServerError::Store(StoreError::Invalid(e)))?;
        let ctx = WriteContext {
            tenant_id: tenant.id,
            actor: Actor {
                kind: "system".into(),
                id: None,
                display: Some("portcullis recover".into()),
                authentication: None,
            },
            origin: Origin::default(),
            now,
            keep_role_assigner: None,
        };
        let (service_principal, key) = store.recover_tenant(&ctx, &name, record).await?;
        Ok(Recovered {
            tenant: tenant.name,
            service_principal,
            key,
            secret: generated.full,
        })
    }
}

async fn bootstrap(
    store: &Store,
    hasher: &SecretHasher,
    config: &Config,
    now: time::OffsetDateTime,
) -> Result<Option<Bootstrapped>, ServerError> {
    let name = parse_slug("operator_tenant", &config.operator_tenant)
        .map_err(|e| config::ConfigError::Invalid(e.to_string()))?;
    let generated =
        portcullis_core::secrets::GeneratedApiKey::generate().map_err(StoreError::Secret)?;
    let record = portcullis_store::NewApiKey {
        prefix: generated.prefix.clone(),
        secret_hash: hasher.hash(generated.secret_bytes()),
        name: Some("bootstrap".into()),
        expires_at: None,
    };
    let context = |tenant_id| WriteContext {
        tenant_id,
        actor: Actor::system(),
        origin: Origin::default(),
        now,
        keep_role_assigner: None,
    };
    let Some(created) = store.bootstrap(context, &name, record).await? else {
        return Ok(None);
    };
    let path = config.data_dir.join(BOOTSTRAP_FILE);
    let file = match write_private_file(
        &path,
        format!("{}\n", generated.full.expose_secret()).as_bytes(),
    ) {
        Ok(()) => Some(path),
        Err(error) => {
            tracing::warn!(%error, "could not write the bootstrap credential file");
            None
        }
    };
    Ok(Some(Bootstrapped {
        created,
        secret: generated.full,
        file,
    }))
}
