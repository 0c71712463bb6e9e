//! Persistence behind one `Store`: SQLite in a local file (the embedded default) or PostgreSQL
//! (for scale-out). Every write commits together with its audit record and its change-feed row,
//! so no change exists without its event. This crate holds SQL and transactions, never business
//! rules: it calls into `portcullis-core` for those.

mod access;
mod administrators;
mod api_use;
mod audit;
mod backoff;
mod branding;
mod bulk;
mod cli_client;
mod conditional;
mod db;
mod device;
mod directory;
mod enrolment;
mod gate;
mod grants;
mod lockout;
mod mail;
mod mfa;
mod oauth;
mod passkeys;
mod passwords;
mod principals;
mod registered_devices;
mod risk;
mod roles;
pub mod scratch;
mod secrets;
mod sessions;
mod tenants;
mod upgrades;
mod user_imports;
mod write;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use access::{AuthorizationChanges, ChangesSince, MAX_DELTA_CHANGES, NewDenyAssignment};
pub use administrators::UnexpiringFirstKey;
pub use audit::{AuditFilter, AuditSink};
pub use branding::LogoChange;
pub use bulk::{BulkRows, BulkUser};
pub use conditional::ConditionalAccess;
pub use device::{DeviceAuthorization, DeviceDecision, NewDeviceAuthorization, Poll};
pub use enrolment::{CreatedLink, MailedLink, NewLink, UnusableLink};
pub use grants::{
    KeptRequest, NewGrant, PendingRequest, Redemption, RefreshTokenRecord, StoredGrant,
};
pub use lockout::RoleAssignerGuard;
pub use mail::{Letter, QueuedMail, SentMail};
pub use mfa::StoredTotp;
pub use oauth::StoredSigningKey;
pub use passkeys::{
    CeremonyPurpose, MAX_PASSKEYS_PER_USER, NewCeremony, SessionsAfterRemoval, StoredPasskey,
};
pub use principals::{
    ApiKeyCredential, MAX_ACTIVE_KEYS, NewApiKey, NewUser, ServicePrincipalChanges, UserChanges,
    UserFilter, UserMatch,
};
pub use registered_devices::NewDevice;
pub use risk::{DetectionFilter, FailureCounts, Finding};
pub use roles::AssignmentFilter;
pub use sessions::{NewSession, SignInSubject, StoredPassword};
pub use tenants::CreatedTenant;
pub use user_imports::ImportProgress;
pub use write::WriteContext;

use db::Pools;

/// A subscription to other nodes' commits (PostgreSQL `LISTEN`).
pub struct ChangeListener(Option<sqlx::postgres::PgListener>);

impl ChangeListener {
    /// Completes when some node commits a change; never, without PostgreSQL.
    pub async fn next(&mut self) -> Result<(), StoreError> {
        match &mut self.0 {
            Some(listener) => listener.recv().await.map(|_| ()).map_err(StoreError::from),
            None => std::future::pending().await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    #[error("the object has changed since it was read (current version {current_version})")]
    VersionMismatch { current_version: i64 },
    #[error(transparent)]
    Invalid(#[from] portcullis_core::ValidationError),
    #[error("database URL {0:?} is not supported: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not as expected: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Secret(#[from] portcullis_core::secrets::SecretError),
    #[error(
        "this database's secrets are sealed with the key-encryption key of fingerprint {expected}, \
         but this server was given the one of fingerprint {actual}: start it with the KEK the database was created with"
    )]
    WrongKek { expected: String, actual: String },
    #[error("the audit writer has stopped")]
    AuditWriterStopped,
    #[error("too many writes to this tenant are waiting")]
    WriteQueueFull,
}

impl StoreError {
    /// Whether the request waited the pool's whole timeout for a database connection, or
    /// found its tenant's write queue full: the node is overloaded (answer 503 and let the
    /// caller retry), not broken.
    pub fn is_overloaded(&self) -> bool {
        matches!(
            self,
            StoreError::Database(sqlx::Error::PoolTimedOut) | StoreError::WriteQueueFull
        )
    }

    pub(crate) fn conflict(field: &str, message: impl Into<String>) -> Self {
        StoreError::Conflict {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// Turns a unique-constraint violation into a conflict naming the field, using the index
    /// names of the migrations (`<table>_<column>_idx`). Other errors pass through.
    pub(crate) fn on_unique(self, columns: &[(&str, &str, &str)]) -> Self {
        let StoreError::Database(sqlx::Error::Database(db)) = &self else {
            return self;
        };
        if !db.is_unique_violation() {
            return self;
        }
        let text = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
        for (column, field, message) in columns {
            if text.contains(column) {
                return StoreError::conflict(field, *message);
            }
        }
        StoreError::Conflict {
            field: None,
            message: "an object with these values already exists".into(),
        }
    }
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The handle to the database. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    backend: Backend,
    /// Each tenant's queue of writes in this process (see `gate`).
    gates: std::sync::Arc<gate::WriteGates>,
    /// The group-commit writer, started on first use (see `audit::AuditSink`).
    group: std::sync::Arc<std::sync::OnceLock<AuditSink>>,
    /// Woken after this process commits a change, so its own caches catch up at once.
    committed: std::sync::Arc<tokio::sync::Notify>,
    /// How many changes this process has committed, so its readers can tell whether they
    /// have seen them all.
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether mail is delivered, and the sender's wake-up.
    mail: std::sync::Arc<mail::MailState>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend)
    }
}

impl Store {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://…`. Does not migrate.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a transaction acknowledged to a client survives power loss, not only a
                // process crash.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await?;
            let readers = SqlitePoolOptions::new()
                .max_connections(max_connections.clamp(1, 16))
                .connect_with(options)
                .await?;
            Ok(Self {
                pools: Pools::Sqlite { writer, readers },
                backend: Backend::Sqlite,
                gates: Default::default(),
                group: Default::default(),
                committed: Default::default(),
                commits: Default::default(),
                mail: Default::default(),
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            // Writes and reads draw on separate pools: a write transaction that reads through
            // the pool while holding its connection can then never wait on connections held
            // by other writers doing the same (with one pool, as many concurrent writes as
            // connections starved each other until the acquire timeout).
            let total = max_connections.max(2);
            let pool = |size: u32| {
                PgPoolOptions::new()
                    .max_connections(size)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
            };
            let writer = pool(total / 2).await?;
            let readers = pool(total - total / 2).await?;
            Ok(Self {
                pools: Pools::Postgres { writer, readers },
                backend: Backend::Postgres,
                gates: Default::default(),
                group: Default::default(),
                committed: Default::default(),
                commits: Default::default(),
                mail: Default::default(),
            })
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How many changes this process has committed so far.
    pub fn local_commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Completes once this process has committed a change through `Write` since the last call
    /// (one waiter: the change-feed tail).
    pub async fn committed(&self) {
        self.committed.notified().await;
    }

    /// Waits for the next change-feed notification from PostgreSQL (any node's commit), or
    /// forever on SQLite, where only this process writes.
    pub async fn listen_for_changes(&self) -> Result<ChangeListener, StoreError> {
        match &self.pools {
            Pools::Postgres { readers, .. } => {
                let mut listener = sqlx::postgres::PgListener::connect_with(readers).await?;
                listener.listen("portcullis_changes").await?;
                Ok(ChangeListener(Some(listener)))
            }
            Pools::Sqlite { .. } => Ok(ChangeListener(None)),
        }
    }

    /// Brings the schema, then the stored data, up to date. Safe to run from several processes
    /// at once: PostgreSQL migrations hold an advisory lock, SQLite has a single writer, and
    /// data upgrades are idempotent.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => {
                sqlx::migrate!("./migrations/sqlite").run(writer).await?
            }
            Pools::Postgres { writer, .. } => {
                sqlx::migrate!("./migrations/postgres").run(writer).await?
            }
        }
        self.upgrade_data().await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pools
            .fetch_optional(db::query("SELECT 1 AS one"))
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { writer, readers } => {
                readers.close().await;
                writer.close().await;
            }
            Pools::Postgres { writer, readers } => {
                readers.close().await;
                writer.close().await;
            }
        }
    }
}

/// Names this build's PostgreSQL schema: the last migration's version and a fold of every
/// migration's checksum (a scratch template database is named by it).
pub fn postgres_schema_fingerprint() -> String {
    let migrator = sqlx::migrate!("./migrations/postgres");
    // Not a security digest: only tells one set of migration files from another.
    let folded = migrator
        .iter()
        .flat_map(|m| m.checksum.iter().take(8))
        .fold(0u64, |hash, byte| {
            hash.wrapping_mul(0x100_0000_01b3) ^ u64::from(*byte)
        });
    let last = migrator.iter().last().map_or(0, |m| m.version);
    format!("{last}_{folded:016x}")
}

/// A database URL with any password replaced, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pool_timeout_or_a_full_write_queue_is_overload() {
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_overloaded());
        assert!(StoreError::WriteQueueFull.is_overloaded());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_overloaded());
        assert!(!StoreError::NotFound.is_overloaded());
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
