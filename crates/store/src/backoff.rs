//! The sign-in back-off's counts (see `portcullis_core::backoff` for the rules), shared by
//! every node: a check and its count are one transaction with the key's row locked, so
//! simultaneous attempts on any nodes see each other.

use std::time::Duration;

use time::OffsetDateTime;

use portcullis_core::backoff::{BackoffPolicy, Counted, QUIET, Standing, admit, standing};

use crate::db::{Row, Tx, query};
use crate::{Store, StoreError};

fn counted(row: &Row) -> Result<Counted, StoreError> {
    Ok(Counted {
        failures: u32::try_from(row.int("failures")?).unwrap_or(u32::MAX),
        last: row.time("last_at")?,
    })
}

/// The key's row, locked until the transaction ends (PostgreSQL; SQLite's write transaction
/// already holds the database's one write lock).
async fn locked(tx: &mut Tx, key: &str) -> Result<Option<Counted>, StoreError> {
    let sql = if tx.is_postgres() {
        "SELECT failures, last_at FROM auth_backoff WHERE key = $1 FOR UPDATE"
    } else {
        "SELECT failures, last_at FROM auth_backoff WHERE key = $1"
    };
    tx.fetch_optional(query(sql).bind(key))
        .await?
        .as_ref()
        .map(counted)
        .transpose()
}

/// A transaction for counts only. On PostgreSQL it does not wait for its commit to reach the
/// disk: a crash may forget the last moment's counts, which costs an attacker's next few
/// guesses nothing they could not have had by waiting out the back-off anyway.
async fn begin(store: &Store) -> Result<Tx, StoreError> {
    let mut tx = store.pools.begin().await?;
    if tx.is_postgres() {
        tx.execute(query("SET LOCAL synchronous_commit = off"))
            .await?;
    }
    Ok(tx)
}

impl Store {
    /// Lets one attempt for `key` through, counted at once as a failure; or how long the key
    /// must still wait. The count is taken with the key's row locked, so attempts made at the
    /// same time on any nodes each see the others.
    pub async fn backoff_reserve(
        &self,
        key: &str,
        now: OffsetDateTime,
        policy: &BackoffPolicy,
    ) -> Result<Result<(), Duration>, StoreError> {
        let mut tx = begin(self).await?;
        if tx.is_postgres() {
            // A row to lock, so that two first attempts cannot both read "none".
            tx.execute(
                query(
                    "INSERT INTO auth_backoff (key, failures, last_at) VALUES ($1, 0, $2) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(key)
                .bind(now),
            )
            .await?;
        }
        let next = match admit(locked(&mut tx, key).await?, now, policy) {
            Ok(next) => next,
            Err(wait) => return Ok(Err(wait)),
        };
        tx.execute(
            query(
                "INSERT INTO auth_backoff (key, failures, last_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at",
            )
            .bind(key)
            .bind(i64::from(next.failures))
            .bind(next.last),
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Gives back one attempt of `key` (it did not fail, but proves nothing about the key).
    pub async fn backoff_refund(&self, key: &str) -> Result<(), StoreError> {
        let mut tx = begin(self).await?;
        tx.execute(
            query(
                "UPDATE auth_backoff SET failures = failures - 1 WHERE key = $1 AND failures > 0",
            )
            .bind(key),
        )
        .await?;
        tx.commit().await
    }

    /// Forgets `key`'s failures (a success proved its owner, or an administrator unlocked it):
    /// how many were counted.
    pub async fn backoff_forget(&self, key: &str) -> Result<Option<u32>, StoreError> {
        let mut tx = begin(self).await?;
        let forgotten = locked(&mut tx, key).await?;
        if forgotten.is_some() {
            tx.execute(query("DELETE FROM auth_backoff WHERE key = $1").bind(key))
                .await?;
        }
        tx.commit().await?;
        Ok(forgotten
            .map(|c| c.failures)
            .filter(|failures| *failures > 0))
    }

    /// Where `key` stands with `policy`.
    pub async fn backoff_standing(
        &self,
        key: &str,
        now: OffsetDateTime,
        policy: &BackoffPolicy,
    ) -> Result<Option<Standing>, StoreError> {
        let row = self
            .pools
            .fetch_optional(
                query("SELECT failures, last_at FROM auth_backoff WHERE key = $1").bind(key),
            )
            .await?;
        Ok(row
            .as_ref()
            .map(counted)
            .transpose()?
            .and_then(|c| standing(c, now, policy)))
    }

    /// Forgets every key quiet for `QUIET`: their failures no longer count. The sweeper's.
    pub async fn backoff_sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.pools
            .execute(query("DELETE FROM auth_backoff WHERE last_at < $1").bind(now - QUIET))
            .await
    }
}
