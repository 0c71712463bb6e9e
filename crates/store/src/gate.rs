//! Admission for writes: a tenant's writes queue in the process, one at a time, before they
//! take a database connection. Writes to one tenant are serialised anyway (by its advisory lock
//! on PostgreSQL, by the single writer on SQLite); without this queue every waiting write held a
//! pooled connection while it waited, so a burst on one tenant emptied the writer pool for every
//! tenant and the requests that then timed out had done their work for nothing. The queue is
//! bounded: past it, or past its wait, a write is refused at once as overloaded (503).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use portcullis_core::TenantId;

use crate::StoreError;

/// Writes of one tenant waiting in this process at most; the next is refused. At the 1–4 ms a
/// write takes on PostgreSQL (benchmarks, "Sustained churn"), this is one to two seconds of work.
pub(crate) const MAX_QUEUED_WRITES: usize = 512;

/// How long a write waits for its turn before it is refused.
pub(crate) const MAX_WRITE_WAIT: Duration = Duration::from_secs(10);

struct Gate {
    turn: Arc<Semaphore>,
    /// Writes waiting for their turn (not the one holding it).
    waiting: usize,
}

/// Every tenant's queue in this process. An entry lives while a write holds or waits for it.
#[derive(Default)]
pub(crate) struct WriteGates {
    gates: Mutex<HashMap<TenantId, Gate>>,
}

/// A tenant's turn to write; the next write of the tenant goes when this is dropped.
pub(crate) struct Turn {
    gates: Arc<WriteGates>,
    tenant_id: TenantId,
    permit: Option<OwnedSemaphorePermit>,
    /// Still counted among the tenant's waiting writes (until the turn comes, or the wait is
    /// given up: timed out, or the request cancelled).
    waiting: bool,
}

impl WriteGates {
    /// Waits for `tenant_id`'s turn: refused with `StoreError::WriteQueueFull` when
    /// `MAX_QUEUED_WRITES` already wait or the wait passes `max_wait`.
    pub(crate) async fn turn(
        self: &Arc<Self>,
        tenant_id: TenantId,
        max_wait: Duration,
    ) -> Result<Turn, StoreError> {
        let turn = {
            let mut gates = self.lock();
            let gate = gates.entry(tenant_id).or_insert_with(|| Gate {
                turn: Arc::new(Semaphore::new(1)),
                waiting: 0,
            });
            if gate.waiting >= MAX_QUEUED_WRITES {
                return Err(StoreError::WriteQueueFull);
            }
            gate.waiting += 1;
            gate.turn.clone()
        };
        // From here on the entry is ours to clean up, whatever happens to the wait.
        let mut waiter = Turn {
            gates: self.clone(),
            tenant_id,
            permit: None,
            waiting: true,
        };
        // The semaphore is never closed: a timeout is the only way to fail.
        let Ok(Ok(permit)) = tokio::time::timeout(max_wait, turn.acquire_owned()).await else {
            return Err(StoreError::WriteQueueFull);
        };
        let mut gates = self.lock();
        if let Some(gate) = gates.get_mut(&tenant_id) {
            gate.waiting -= 1;
        }
        drop(gates);
        waiter.waiting = false;
        waiter.permit = Some(permit);
        Ok(waiter)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Gate>> {
        // A panic while holding this lock leaves the map consistent (every update is one
        // statement), so a poisoned lock is still usable.
        self.gates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tenants with a write in progress or waiting.
    #[cfg(test)]
    fn tenants(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut gates = self.gates.lock();
        // Released under the map's lock, so whoever looks at the entry next sees it free.
        drop(self.permit.take());
        let Some(gate) = gates.get_mut(&self.tenant_id) else {
            return;
        };
        if self.waiting {
            gate.waiting -= 1;
        }
        if gate.waiting == 0 && gate.turn.available_permits() == 1 {
            gates.remove(&self.tenant_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::from_uuid(uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn one_write_of_a_tenant_at_a_time_and_other_tenants_do_not_wait() {
        let gates = Arc::new(WriteGates::default());
        let (a, b) = (tenant(), tenant());
        let first = gates.turn(a, MAX_WRITE_WAIT).await.unwrap();
        // Another tenant goes at once.
        let other = gates.turn(b, MAX_WRITE_WAIT).await.unwrap();
        // The same tenant waits until the first is done.
        let waiting = tokio::spawn({
            let gates = gates.clone();
            async move { gates.turn(a, MAX_WRITE_WAIT).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        waiting.await.unwrap().unwrap();
        drop(other);
        assert_eq!(gates.tenants(), 0, "entries are removed once unused");
    }

    #[tokio::test]
    async fn a_write_that_waits_too_long_is_refused_and_leaves_the_queue() {
        let gates = Arc::new(WriteGates::default());
        let a = tenant();
        let held = gates.turn(a, MAX_WRITE_WAIT).await.unwrap();
        let refused = gates.turn(a, Duration::from_millis(50)).await;
        assert!(matches!(refused, Err(StoreError::WriteQueueFull)));
        // A request cancelled while it waits leaves the queue too.
        let cancelled = tokio::spawn({
            let gates = gates.clone();
            async move { gates.turn(a, MAX_WRITE_WAIT).await.map(|_| ()) }
        });
        while gates.lock()[&a].waiting == 0 {
            tokio::task::yield_now().await;
        }
        cancelled.abort();
        assert!(cancelled.await.unwrap_err().is_cancelled());
        assert_eq!(gates.lock()[&a].waiting, 0);
        drop(held);
        assert_eq!(gates.tenants(), 0);
        gates.turn(a, MAX_WRITE_WAIT).await.unwrap();
    }

    #[tokio::test]
    async fn past_the_queue_bound_a_write_is_refused_at_once() {
        let gates = Arc::new(WriteGates::default());
        let a = tenant();
        let held = gates.turn(a, MAX_WRITE_WAIT).await.unwrap();
        let mut queued = tokio::task::JoinSet::new();
        for _ in 0..MAX_QUEUED_WRITES {
            let gates = gates.clone();
            queued.spawn(async move { gates.turn(a, MAX_WRITE_WAIT).await.map(|_| ()) });
        }
        while gates.lock()[&a].waiting < MAX_QUEUED_WRITES {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            gates.turn(a, MAX_WRITE_WAIT).await,
            Err(StoreError::WriteQueueFull)
        ));
        drop(held);
        while let Some(done) = queued.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(gates.tenants(), 0);
    }
}
