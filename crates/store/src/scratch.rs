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

impl ScratchDatabase {
    /// Creates an empty database on the server `admin_url` points at (any database the user
    /// may connect to, with the right to create databases).
    pub async fn create(admin_url: &str) -> Result<Self, StoreError> {
        let name = format!("{SCRATCH_PREFIX}{}", uuid::Uuid::now_v7().simple());
        let mut admin = PgConnection::connect(admin_url).await?;
        // The name is ours (prefix + hex), never outside input.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        let (base, query) = admin_url
            .split_once('?')
            .map_or((admin_url, None), |(base, query)| (base, Some(query)));
        let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
        let url = match query {
            Some(query) => format!("{server}/{name}?{query}"),
            None => format!("{server}/{name}"),
        };
        Ok(Self {
            name,
            url,
            admin_url: admin_url.to_owned(),
        })
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
