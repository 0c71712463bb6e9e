//! The sign-in back-off's counts (see `portcullis_core::backoff` for the rules), shared by
//! every node: a check and its count are one transaction with the keys' rows locked, so
//! simultaneous attempts on any nodes see each other. Commits are as durable as any other.

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

/// The key's count, its row locked until the transaction ends. On PostgreSQL one statement
/// makes the row if there is none and locks it, so that two first attempts cannot both read
/// "none"; SQLite's write transaction already holds the database's one write lock. A row with
/// nothing counted reads as none.
async fn locked(
    tx: &mut Tx,
    key: &str,
    now: OffsetDateTime,
) -> Result<Option<Counted>, StoreError> {
    let row = if tx.is_postgres() {
        tx.fetch_optional(
            query(
                "INSERT INTO auth_backoff (key, failures, last_at) VALUES ($1, 0, $2) \
                 ON CONFLICT (key) DO UPDATE SET key = excluded.key RETURNING failures, last_at",
            )
            .bind(key)
            .bind(now),
        )
        .await?
    } else {
        tx.fetch_optional(
            query("SELECT failures, last_at FROM auth_backoff WHERE key = $1").bind(key),
        )
        .await?
    };
    Ok(row
        .as_ref()
        .map(counted)
        .transpose()?
        .filter(|c| c.failures > 0))
}

async fn begin(store: &Store) -> Result<Tx, StoreError> {
    store.pools.begin().await
}

impl Store {
    /// Lets one attempt through on every key (an account and the address it is tried from),
    /// each counted at once as a failure; or, if any key must still wait, none, with the
    /// longest wait. One transaction with the keys' rows locked, so attempts made at the same
    /// time on any nodes each see the others.
    pub async fn backoff_reserve(
        &self,
        keys: &[(&str, &BackoffPolicy)],
        now: OffsetDateTime,
    ) -> Result<Result<(), Duration>, StoreError> {
        let mut tx = begin(self).await?;
        let mut sorted: Vec<&(&str, &BackoffPolicy)> = keys.iter().collect();
        // One order for every transaction, so two that lock the same keys cannot deadlock.
        sorted.sort_by_key(|(key, _)| *key);
        let mut admitted = Vec::with_capacity(sorted.len());
        let mut longest: Option<Duration> = None;
        for (key, policy) in sorted {
            match admit(locked(&mut tx, key, now).await?, now, policy) {
                Ok(next) => admitted.push((*key, next)),
                Err(wait) => longest = Some(longest.map_or(wait, |w| w.max(wait))),
            }
        }
        if let Some(wait) = longest {
            return Ok(Err(wait));
        }
        for (key, next) in admitted {
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
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Settles attempts that did not fail, in one transaction: `forget` keys' failures are
    /// forgotten (the attempt proved their owner), `refund` keys get their one attempt back
    /// (it proves nothing about them, like an address someone signed in from).
    pub async fn backoff_settle(&self, forget: &[&str], refund: &[&str]) -> Result<(), StoreError> {
        let mut tx = begin(self).await?;
        for key in forget {
            tx.execute(query("DELETE FROM auth_backoff WHERE key = $1").bind(*key))
                .await?;
        }
        for key in refund {
            tx.execute(
                query(
                    "UPDATE auth_backoff SET failures = failures - 1 WHERE key = $1 AND failures > 0",
                )
                .bind(*key),
            )
            .await?;
        }
        tx.commit().await
    }

    /// Forgets `key`'s failures (an administrator's unlock): how many were counted.
    pub async fn backoff_forget(&self, key: &str) -> Result<Option<u32>, StoreError> {
        let mut tx = begin(self).await?;
        let forgotten = tx
            .fetch_optional(
                query("DELETE FROM auth_backoff WHERE key = $1 RETURNING failures, last_at")
                    .bind(key),
            )
            .await?;
        tx.commit().await?;
        Ok(forgotten
            .as_ref()
            .map(counted)
            .transpose()?
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
