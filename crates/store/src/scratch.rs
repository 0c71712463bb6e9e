//! Throw-away PostgreSQL databases for test suites and benchmarks: each run gets an empty
//! database of its own on a shared server, named `pc_t_<uuid>` so leftovers are easy to find.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::StoreError;

/// Prefix of every scratch database's name.
pub const SCRATCH_PREFIX: &str = "pc_t_";

/// A scratch database: its name and the URL to reach it.
#[derive(Debug, Clone)]
pub struct ScratchDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

/// The URL of database `name` on the server `admin_url` points at.
fn url_of(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Runs `sql` (built from names of ours, never outside input) as `admin`, again for a few
/// seconds while PostgreSQL still counts a connection that was just closed as using a database
/// the statement needs alone (`55006`, object in use).
async fn while_in_use(admin: &mut PgConnection, sql: String) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        match sqlx::raw_sql(AssertSqlSafe(sql.clone()))
            .execute(&mut *admin)
            .await
        {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("55006") && tries < 100 =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            result => return result.map(|_| ()).map_err(StoreError::from),
        }
    }
}

impl ScratchDatabase {
    /// Creates an empty database on the server `admin_url` points at (any database the user
    /// may connect to, with the right to create databases).
    pub async fn create(admin_url: &str) -> Result<Self, StoreError> {
        Self::create_as_copy(admin_url, None).await
    }

    /// Creates a database that is a copy of `template` (see `migrated_template`): a file copy
    /// on the server, much faster than migrating a database.
    pub async fn create_from(admin_url: &str, template: &str) -> Result<Self, StoreError> {
        Self::create_as_copy(admin_url, Some(template)).await
    }

    async fn create_as_copy(admin_url: &str, template: Option<&str>) -> Result<Self, StoreError> {
        let name = format!("{SCRATCH_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        let sql = match template {
            Some(template) => format!("CREATE DATABASE {name} TEMPLATE {template}"),
            None => format!("CREATE DATABASE {name}"),
        };
        while_in_use(&mut admin, sql).await?;
        admin.close().await?;
        Ok(Self {
            url: url_of(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// The name of a database on the server holding this build's PostgreSQL schema and no
    /// data, created if missing: test suites copy it (`create_from`) instead of migrating a
    /// database per test. Named by the migrations, so a new migration makes a new one; made
    /// under an advisory lock and published by a rename, so processes starting together build
    /// it once and never copy a half-migrated one. Its name has the scratch prefix: the sweep
    /// of leftover scratch databases removes it too.
    pub async fn migrated_template(admin_url: &str) -> Result<String, StoreError> {
        let name = format!(
            "{SCRATCH_PREFIX}template_{}",
            crate::postgres_schema_fingerprint()
        );
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query("SELECT pg_advisory_lock(hashtext('portcullis scratch template'))")
            .execute(&mut admin)
            .await?;
        let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_optional(&mut admin)
            .await?
            .is_some();
        if !exists {
            let building = Self::create(admin_url).await?;
            let store = crate::Store::connect(&building.url, 2).await?;
            let migrated = store.migrate().await;
            store.close().await;
            migrated?;
            while_in_use(
                &mut admin,
                format!("ALTER DATABASE {} RENAME TO {name}", building.name),
            )
            .await?;
        }
        sqlx::query("SELECT pg_advisory_unlock(hashtext('portcullis scratch template'))")
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        Ok(name)
    }

    /// Drops the database, closing whatever connections still use it.
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await?;
        admin.close().await?;
        Ok(())
    }
}
