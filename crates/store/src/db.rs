//! One set of SQL for two databases. Queries are written once with numbered `$N` parameters
//! over portable column types (TEXT, BIGINT, BOOLEAN, BLOB/BYTEA) and run on a concrete
//! `SqlitePool` or `PgPool`. Backend differences live only in this file and in the migrations.

use std::borrow::Cow;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Row as _, Sqlite, Transaction};
use time::OffsetDateTime;

use portcullis_core::time_util::{from_micros, to_micros};

use crate::StoreError;

/// A value bound to a query parameter.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Bytes(v)
    }
}
impl From<OffsetDateTime> for Arg {
    fn from(v: OffsetDateTime) -> Self {
        Arg::Int(Some(to_micros(v)))
    }
}
impl From<Option<OffsetDateTime>> for Arg {
    fn from(v: Option<OffsetDateTime>) -> Self {
        Arg::Int(v.map(to_micros))
    }
}

macro_rules! id_args {
    ($($id:ty),*) => {$(
        impl From<$id> for Arg {
            fn from(v: $id) -> Self { Arg::Text(Some(v.to_string())) }
        }
        impl From<Option<$id>> for Arg {
            fn from(v: Option<$id>) -> Self { Arg::Text(v.map(|id| id.to_string())) }
        }
    )*};
}
id_args!(
    portcullis_core::TenantId,
    portcullis_core::EnvironmentId,
    portcullis_core::BusinessUnitId,
    portcullis_core::UserId,
    portcullis_core::GroupId,
    portcullis_core::ServicePrincipalId,
    portcullis_core::GrantId,
    portcullis_core::DeviceAuthorizationId,
    portcullis_core::ApiKeyId,
    portcullis_core::RoleAssignmentId,
    portcullis_core::SessionId,
    portcullis_core::PasskeyId,
    portcullis_core::RoleId,
    portcullis_core::RecordId,
    portcullis_core::ShareId,
    portcullis_core::DenyAssignmentId,
    portcullis_core::RiskDetectionId,
    portcullis_core::RegisteredDeviceId,
    portcullis_core::UserImportId,
    uuid::Uuid
);

/// A statement and its parameters.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

pub(crate) fn query(sql: &'static str) -> Query {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

/// `$from, $from+1, …`: `count` placeholders for an `IN (…)` list in an assembled statement.
pub(crate) fn placeholders(from: usize, count: usize) -> String {
    (from..from + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many ids one `IN (…)` list takes at most: well under either store's limit on a
/// statement's parameters.
pub(crate) const IDS_PER_STATEMENT: usize = 500;

/// A statement assembled at run time — only ever from this crate's own constant fragments and
/// generated placeholders, never from input.
pub(crate) fn assembled_query(sql: String) -> Query {
    Query {
        sql: Cow::Owned(sql),
        args: Vec::new(),
    }
}

impl Query {
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends ` AND {condition} $n` with `value` bound as `$n`, only when there is a value.
    /// A filter left out is then no condition at all, rather than `($n IS NULL OR …)`, which
    /// keeps the planners (SQLite's above all) from using the filter's index.
    pub(crate) fn and<T: Into<Arg>>(mut self, condition: &'static str, value: Option<T>) -> Self {
        if let Some(value) = value {
            self.args.push(value.into());
            let placeholder = format!(" AND {condition} ${}", self.args.len());
            self.sql.to_mut().push_str(&placeholder);
        }
        self
    }

    /// Appends `fragment` and then `$n` with `value` bound (a limit after an `ORDER BY`).
    pub(crate) fn then_bind(mut self, fragment: &'static str, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        let placeholder = format!("{fragment}${}", self.args.len());
        self.sql.to_mut().push_str(&placeholder);
        self
    }

    fn sqlite(self) -> sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.sql));
        for arg in self.args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }

    fn postgres(self) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.sql));
        for arg in self.args {
            q = match arg {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }
}

/// A result row from either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

macro_rules! get {
    ($row:expr, $ty:ty, $col:expr) => {
        match $row {
            Row::Sqlite(r) => r.try_get::<$ty, _>($col),
            Row::Postgres(r) => r.try_get::<$ty, _>($col),
        }
        .map_err(|e| StoreError::Corrupt(format!("column {}: {e}", $col)))
    };
}

impl Row {
    pub(crate) fn text(&self, col: &str) -> Result<String, StoreError> {
        get!(self, String, col)
    }

    pub(crate) fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        get!(self, Option<String>, col)
    }

    pub(crate) fn int(&self, col: &str) -> Result<i64, StoreError> {
        get!(self, i64, col)
    }

    pub(crate) fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        get!(self, Option<i64>, col)
    }

    pub(crate) fn boolean(&self, col: &str) -> Result<bool, StoreError> {
        get!(self, bool, col)
    }

    pub(crate) fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError> {
        get!(self, Vec<u8>, col)
    }

    pub(crate) fn time(&self, col: &str) -> Result<OffsetDateTime, StoreError> {
        self.int(col).map(from_micros)
    }

    pub(crate) fn opt_time(&self, col: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(self.opt_int(col)?.map(from_micros))
    }

    /// Parses a column into a typed id or other `FromStr` value.
    pub(crate) fn parse<T: std::str::FromStr>(&self, col: &str) -> Result<T, StoreError> {
        let raw = self.text(col)?;
        raw.parse()
            .map_err(|_| StoreError::Corrupt(format!("column {col}: unexpected value {raw:?}")))
    }

    pub(crate) fn opt_parse<T: std::str::FromStr>(
        &self,
        col: &str,
    ) -> Result<Option<T>, StoreError> {
        self.opt_text(col)?
            .map(|raw| {
                raw.parse().map_err(|_| {
                    StoreError::Corrupt(format!("column {col}: unexpected value {raw:?}"))
                })
            })
            .transpose()
    }

    /// Parses a column with a named-value parser such as `LifecycleState::parse`.
    pub(crate) fn named<T>(
        &self,
        col: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, StoreError> {
        let raw = self.text(col)?;
        parse(&raw)
            .ok_or_else(|| StoreError::Corrupt(format!("column {col}: unexpected value {raw:?}")))
    }
}

/// The connection pools of one backend: write transactions draw on `writer`, everything else
/// on `readers`, so a write that also reads never waits on a connection another write holds.
/// SQLite has a single writer connection (SQLite allows one writer at a time; funnelling
/// writes through one connection avoids lock-upgrade failures).
#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite {
        writer: SqlitePool,
        readers: SqlitePool,
    },
    Postgres {
        writer: PgPool,
        readers: PgPool,
    },
}

impl Pools {
    pub(crate) async fn fetch_all(&self, q: Query) -> Result<Vec<Row>, StoreError> {
        Ok(match self {
            Pools::Sqlite { readers, .. } => q
                .sqlite()
                .fetch_all(readers)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Pools::Postgres { readers, .. } => q
                .postgres()
                .fetch_all(readers)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(&self, q: Query) -> Result<Option<Row>, StoreError> {
        Ok(match self {
            Pools::Sqlite { readers, .. } => {
                q.sqlite().fetch_optional(readers).await?.map(Row::Sqlite)
            }
            Pools::Postgres { readers, .. } => q
                .postgres()
                .fetch_optional(readers)
                .await?
                .map(Row::Postgres),
        })
    }

    /// A write outside any transaction (used for bookkeeping that needs no audit record, such
    /// as a key's last-used time).
    pub(crate) async fn execute(&self, q: Query) -> Result<u64, StoreError> {
        Ok(match self {
            Pools::Sqlite { writer, .. } => q.sqlite().execute(writer).await?.rows_affected(),
            Pools::Postgres { writer, .. } => q.postgres().execute(writer).await?.rows_affected(),
        })
    }

    /// A read-only transaction that sees one consistent state of the database throughout.
    pub(crate) async fn begin_read(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            // In WAL mode a deferred transaction reads one snapshot from its first read on.
            Pools::Sqlite { readers, .. } => Tx::Sqlite(readers.begin_with("BEGIN").await?),
            Pools::Postgres { readers, .. } => Tx::Postgres(
                readers
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        })
    }

    /// A write transaction of one tenant. On PostgreSQL it begins holding the tenant's
    /// transaction-scoped advisory lock `tenant_lock`, taken in the same round trip as the
    /// `BEGIN`; SQLite's single writer needs no lock.
    pub(crate) async fn begin_tenant_write(&self, tenant_lock: i64) -> Result<Tx, StoreError> {
        match self {
            Pools::Sqlite { .. } => self.begin().await,
            // The key is a number this process computed, never text a client sent.
            Pools::Postgres { writer, .. } => Ok(Tx::Postgres(
                writer
                    .begin_with(AssertSqlSafe(format!(
                        "BEGIN; SELECT pg_advisory_xact_lock({tenant_lock})"
                    )))
                    .await?,
            )),
        }
    }

    pub(crate) async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match self {
            // IMMEDIATE takes the write lock up front. A deferred transaction that reads and then
            // writes fails with SQLITE_BUSY at once, whatever the busy timeout, when another
            // process wrote in between — possible when two processes share one file.
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres { writer, .. } => Tx::Postgres(writer.begin().await?),
        })
    }
}

/// An open write transaction.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    pub(crate) async fn execute(&mut self, q: Query) -> Result<u64, StoreError> {
        Ok(match self {
            Tx::Sqlite(tx) => q.sqlite().execute(&mut **tx).await?.rows_affected(),
            Tx::Postgres(tx) => q.postgres().execute(&mut **tx).await?.rows_affected(),
        })
    }

    pub(crate) async fn fetch_all(&mut self, q: Query) -> Result<Vec<Row>, StoreError> {
        Ok(match self {
            Tx::Sqlite(tx) => q
                .sqlite()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Tx::Postgres(tx) => q
                .postgres()
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(&mut self, q: Query) -> Result<Option<Row>, StoreError> {
        Ok(match self {
            Tx::Sqlite(tx) => q.sqlite().fetch_optional(&mut **tx).await?.map(Row::Sqlite),
            Tx::Postgres(tx) => q
                .postgres()
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        })
    }

    pub(crate) async fn fetch_one(&mut self, q: Query) -> Result<Row, StoreError> {
        self.fetch_optional(q).await?.ok_or(StoreError::NotFound)
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
