//! What the account page tells people about themselves beyond their sessions and applications:
//! how they sign in, the devices they registered, and the roles they hold with the group each
//! comes through. Read for the signed-in person only, straight from the store: knowing oneself
//! needs no administrative right.

use portcullis_core::authz::RoleRef;
use portcullis_core::device_key::RegisteredDevice;
use portcullis_core::identity::PrincipalRef;
use portcullis_core::page::{MAX_LIMIT, PageRequest};
use portcullis_core::password::PasswordStatus;
use portcullis_core::totp::MfaStatus;
use portcullis_store::AssignmentFilter;

use super::{PageError, SignedIn, minute, scope_words};
use crate::engine::Freshness;
use crate::error::ApiError;
use crate::state::AppState;

/// Groups whose roles are listed at most; a person in more is told so.
const GROUPS_SHOWN: usize = 100;

/// A role the person holds, in words.
pub(super) struct HeldRole {
    pub role: String,
    pub scope: String,
    /// The group it comes through, when not held directly.
    pub through: Option<String>,
    /// From when and until when, if it is limited.
    pub window: Option<String>,
    pub in_force: bool,
}

pub(super) struct Myself {
    pub password: PasswordStatus,
    pub mfa: MfaStatus,
    pub passkeys: Vec<String>,
    pub devices: Vec<RegisteredDevice>,
    pub roles: Vec<HeldRole>,
    /// More groups than `GROUPS_SHOWN`: the list of roles is not whole.
    pub more_groups: bool,
}

pub(super) async fn myself(state: &AppState, me: &SignedIn) -> Result<Myself, PageError> {
    let (tenant, user) = (me.tenant.id, me.user.id);
    let store = &state.store;
    let passkeys = store.passkeys(tenant, user).await?;
    Myself {
        password: store.password_status(tenant, user).await?,
        mfa: store.mfa_status(tenant, user).await?,
        passkeys: passkeys.into_iter().map(|p| p.name).collect(),
        devices: store.registered_devices(tenant, Some(user)).await?,
        roles: Vec::new(),
        more_groups: false,
    }
    .with_roles(state, me)
    .await
}

impl Myself {
    /// Adds the roles held directly and through every group the person is in, nested groups
    /// included (as the engine sees them).
    async fn with_roles(mut self, state: &AppState, me: &SignedIn) -> Result<Self, PageError> {
        let tenant = me.tenant.id;
        let wait = std::time::Duration::from_millis(state.config.authz_max_wait_ms);
        let current = state
            .engines
            .fresh(&state.store, tenant, Freshness::Latest, wait)
            .await
            .map_err(ApiError::from)?;
        let myself = PrincipalRef::user(me.user.id);
        let groups = current.engine.groups_of(myself);
        self.more_groups = groups.len() > GROUPS_SHOWN;
        let custom = state.store.custom_roles(tenant).await?;
        let role_name = |role: &RoleRef| match role {
            RoleRef::Builtin(role) => role.title().to_owned(),
            RoleRef::Custom(id) => custom
                .iter()
                .find(|c| c.id == *id)
                .map_or_else(|| id.to_string(), |c| c.name.clone()),
        };
        let now = state.clock.now();
        let holders = std::iter::once((myself, None)).chain(
            groups
                .into_iter()
                .take(GROUPS_SHOWN)
                .map(|g| (PrincipalRef::group(g), Some(g))),
        );
        for (holder, group) in holders {
            let filter = AssignmentFilter {
                principal: Some(holder),
                role: None,
                scope: None,
            };
            let page = PageRequest {
                after: None,
                limit: MAX_LIMIT,
            };
            let held = state.store.role_assignments(tenant, &filter, page).await?;
            if held.items.is_empty() {
                continue;
            }
            let through = match group {
                Some(id) => Some(state.store.group(tenant, id).await?.name),
                None => None,
            };
            for assignment in held.items {
                let window = match (assignment.starts_at, assignment.ends_at) {
                    (None, None) => None,
                    (Some(from), None) => Some(format!("from {}", minute(&from))),
                    (None, Some(until)) => Some(format!("until {}", minute(&until))),
                    (Some(from), Some(until)) => {
                        Some(format!("{} to {}", minute(&from), minute(&until)))
                    }
                };
                self.roles.push(HeldRole {
                    role: role_name(&assignment.role),
                    scope: scope_words(&assignment.scope),
                    through: through.clone(),
                    window,
                    in_force: assignment.is_in_effect(now),
                });
            }
        }
        Ok(self)
    }
}
