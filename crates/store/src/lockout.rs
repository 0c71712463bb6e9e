//! The last-administrator rule, inside the write that could break it: after the change's own
//! statements and before its commit, with the tenant's writes serialized (see `Store::write`),
//! the tenant must still have an active user or service principal able to assign roles.

use std::sync::Arc;

use portcullis_core::engine::tenant::{TenantEngine, instant};
use portcullis_core::lockout::{Removal, keeps_a_role_assigner};

use crate::StoreError;
use crate::access::{engine_in, read_source};
use crate::write::Write;

/// What a guarded write takes away, and what the request knew before it.
#[derive(Clone)]
pub struct RoleAssignerGuard {
    pub removal: Removal,
    /// The engine the request decided with and the change-feed revision it reflects. When
    /// the tenant has not changed since, it answers the common cases (a user leaving) without
    /// reading the tenant back.
    pub before: Option<(Arc<TenantEngine>, i64)>,
}

impl std::fmt::Debug for RoleAssignerGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleAssignerGuard")
            .field("removal", &self.removal)
            .field(
                "before",
                &self.before.as_ref().map(|(_, revision)| revision),
            )
            .finish()
    }
}

impl Write {
    /// Refuses the write (with nothing committed) when the tenant, as it stands after it,
    /// has nobody left who may assign roles tenant-wide.
    pub(crate) async fn check_role_assigner(
        &mut self,
        guard: &RoleAssignerGuard,
    ) -> Result<(), StoreError> {
        let tenant = self.ctx.tenant_id;
        let now = instant(self.ctx.now);
        let head = crate::access::change_head_in(&mut self.tx, tenant).await?;
        let quick = guard
            .before
            .as_ref()
            .filter(|(_, revision)| *revision == head)
            .and_then(|(engine, _)| keeps_a_role_assigner(engine, guard.removal, now));
        if let Some(keeps) = quick {
            return refuse_unless(keeps);
        }
        // The tenant as it stands after this write: the request's engine moved forward by the
        // changes since (other writes that committed while this request waited for its turn)
        // and this write's own; built from the whole tenant only when those changes need it.
        let mut after = None;
        if let Some((engine, revision)) = guard.before.as_ref().filter(|(_, r)| *r <= head) {
            let pending = self.pending_changes();
            after = engine_in(&mut self.tx, tenant, (engine, *revision), head, pending).await?;
        }
        let after = match after {
            Some(engine) => engine,
            None => {
                let (source, _) = read_source(&mut self.tx, tenant).await?;
                TenantEngine::build(source).map_err(|e| {
                    StoreError::Corrupt(format!("the tenant's authorization data: {e}"))
                })?
            }
        };
        refuse_unless(after.has_role_assigner(guard.removal.leaving(), now))
    }
}

/// Refuses a write that would leave the tenant without anyone able to assign roles.
fn refuse_unless(keeps: bool) -> Result<(), StoreError> {
    if keeps {
        return Ok(());
    }
    Err(StoreError::Conflict {
        field: None,
        message: "this would leave nobody in the tenant able to assign roles, and so nobody able to make \
                  anyone an administrator again; first give another active user or service principal \
                  tenant_administrator or privileged_role_administrator tenant-wide"
            .into(),
    })
}
