//! How strongly, and how recently, a person must have signed in to administer a tenant. API
//! keys and workloads' tokens authenticate machines, which this does not govern; a person
//! (through an access token or, later, the console's session) is held to the tenant's
//! `AdministratorPolicy` at every admin API action the engine has already allowed. Whoever
//! may do any of Portcullis's own actions is an administrator: the engine decides, not a
//! list of role names.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::ValidationError;
use crate::authz::Action;
use crate::session::{Assurance, Strength};

/// Which of a person's admin API calls need more than a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MfaActions {
    /// None: a password sign-in may change anything its roles allow.
    None,
    /// Every change (the default); reading needs only a sign-in.
    Writes,
    /// Reading too.
    All,
}

impl MfaActions {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Writes => "writes",
            Self::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::None, Self::Writes, Self::All]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Whether principals that hold privileged actions may call the admin API with an API key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyUse {
    /// Any principal's key is accepted (the default).
    #[default]
    Allowed,
    /// Only principals that hold none of `recent_actions` may use a key; people and privileged
    /// automation use OAuth access tokens, which end with the session or grant behind them.
    UnprivilegedOnly,
}

impl ApiKeyUse {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::UnprivilegedOnly => "unprivileged_only",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Allowed, Self::UnprivilegedOnly]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What lets a person into the admin console: reading the tenant's directory, its roles or its
/// audit trail. Everyone else gets their account page.
pub const CONSOLE_ACTIONS: [Action; 3] = [Action::UserRead, Action::RoleRead, Action::AuditRead];

/// A tenant's rules for people who administer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AdministratorPolicy {
    /// Which calls need a multi-factor sign-in (default `writes`).
    pub mfa: MfaActions,
    /// What counts as multi-factor here: `mfa` (default: a password and a second factor, or a
    /// passkey) or `phishing_resistant` (a passkey only).
    #[serde(default = "default_strength")]
    pub mfa_strength: Strength,
    /// Actions that also need a recent sign-in (default: assigning roles and editing them,
    /// deny assignments, tenant, sign-in and key settings, service principal credentials and
    /// users' credential resets).
    #[serde(default = "default_recent_actions")]
    pub recent_actions: BTreeSet<Action>,
    /// How recent, in minutes: 1–720 (default 15).
    #[serde(default = "default_recent_minutes")]
    pub recent_minutes: u32,
    /// Whether principals holding any of `recent_actions` (the privileged ones) may use API
    /// keys: `allowed` (default) or `unprivileged_only`.
    #[serde(default)]
    pub api_keys: ApiKeyUse,
}

fn default_strength() -> Strength {
    Strength::Mfa
}

fn default_recent_actions() -> BTreeSet<Action> {
    use Action::*;
    [
        TenantCreate,
        TenantManage,
        TenantUpdate,
        RoleAssign,
        RoleWrite,
        DenyAssignmentWrite,
        CredentialManage,
        UserCredentialReset,
    ]
    .into_iter()
    .collect()
}

fn default_recent_minutes() -> u32 {
    15
}

/// A session lives at most 12 hours: "recent" cannot mean longer.
const MAX_RECENT_MINUTES: u32 = 12 * 60;

impl Default for AdministratorPolicy {
    fn default() -> Self {
        Self {
            mfa: MfaActions::Writes,
            mfa_strength: default_strength(),
            recent_actions: default_recent_actions(),
            recent_minutes: default_recent_minutes(),
            api_keys: ApiKeyUse::Allowed,
        }
    }
}

impl AdministratorPolicy {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(1..=MAX_RECENT_MINUTES).contains(&self.recent_minutes) {
            return Err(ValidationError::new(
                "recent_minutes",
                format!("must be between 1 and {MAX_RECENT_MINUTES}"),
            ));
        }
        if self.mfa_strength == Strength::Password {
            return Err(ValidationError::new(
                "mfa_strength",
                "must be \"mfa\" or \"phishing_resistant\"; to require no second factor, set \"mfa\": \"none\"",
            ));
        }
        Ok(())
    }

    /// What a person's sign-in must prove before they may do `action` (which the engine has
    /// allowed them), or nothing beyond being signed in.
    pub fn need(&self, action: Action) -> Option<Assurance> {
        let mfa = match self.mfa {
            MfaActions::None => false,
            MfaActions::Writes => action.is_write(),
            MfaActions::All => true,
        };
        let recent = self.recent_actions.contains(&action);
        if !mfa && !recent {
            return None;
        }
        Some(Assurance {
            strength: if mfa {
                self.mfa_strength
            } else {
                Strength::Password
            },
            max_age: recent.then(|| Duration::minutes(i64::from(self.recent_minutes))),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn by_default_changes_need_mfa_and_privileged_ones_a_recent_sign_in() {
        let policy = AdministratorPolicy::default();
        assert_eq!(policy.need(Action::UserRead), None);
        assert_eq!(policy.need(Action::AuditRead), None);
        assert_eq!(
            policy.need(Action::UserCreate),
            Some(Assurance {
                strength: Strength::Mfa,
                max_age: None
            })
        );
        assert_eq!(
            policy.need(Action::RoleAssign),
            Some(Assurance {
                strength: Strength::Mfa,
                max_age: Some(Duration::minutes(15))
            })
        );
    }

    #[test]
    fn recent_actions_without_mfa_need_only_a_fresh_password() {
        let policy = AdministratorPolicy {
            mfa: MfaActions::None,
            ..AdministratorPolicy::default()
        };
        assert_eq!(policy.need(Action::UserCreate), None);
        assert_eq!(
            policy.need(Action::DenyAssignmentWrite),
            Some(Assurance {
                strength: Strength::Password,
                max_age: Some(Duration::minutes(15))
            })
        );
    }

    #[test]
    fn validation_names_the_field() {
        let mut policy = AdministratorPolicy {
            recent_minutes: 0,
            ..AdministratorPolicy::default()
        };
        assert_eq!(policy.validate().unwrap_err().field, "recent_minutes");
        policy.recent_minutes = 721;
        assert_eq!(policy.validate().unwrap_err().field, "recent_minutes");
        policy.recent_minutes = 720;
        policy.mfa_strength = Strength::Password;
        assert_eq!(policy.validate().unwrap_err().field, "mfa_strength");
    }

    #[test]
    fn unknown_actions_and_fields_are_refused_when_read() {
        let wrong_action = serde_json::json!({"mfa": "writes", "recent_actions": ["role.grant"]});
        let error = serde_json::from_value::<AdministratorPolicy>(wrong_action).unwrap_err();
        assert!(error.to_string().contains("role.grant"), "{error}");
        let extra = serde_json::json!({"mfa": "writes", "mfa_for": "all"});
        assert!(serde_json::from_value::<AdministratorPolicy>(extra).is_err());
        let minimal: AdministratorPolicy =
            serde_json::from_value(serde_json::json!({"mfa": "all"})).unwrap();
        assert_eq!(minimal.recent_actions, default_recent_actions());
    }

    proptest! {
        /// Reading never needs more than writing under any policy, and whatever a policy asks
        /// for an action is at least what it asks for every action when set to `all`.
        #[test]
        fn needs_are_monotone(
            mfa in prop::sample::select(vec![MfaActions::None, MfaActions::Writes, MfaActions::All]),
            recent in prop::collection::btree_set(prop::sample::select(Action::ALL.to_vec()), 0..8),
            minutes in 1u32..=720,
            action in prop::sample::select(Action::ALL.to_vec()),
        ) {
            let policy = AdministratorPolicy { mfa, mfa_strength: Strength::Mfa, recent_actions: recent.clone(), recent_minutes: minutes, api_keys: ApiKeyUse::Allowed };
            let need = policy.need(action);
            prop_assert_eq!(need.and_then(|n| n.max_age).is_some(), recent.contains(&action));
            let stricter = AdministratorPolicy { mfa: MfaActions::All, ..policy.clone() };
            let strict_need = stricter.need(action).map(|n| n.strength);
            prop_assert!(strict_need >= need.map(|n| n.strength));
            if !action.is_write() && mfa != MfaActions::All {
                prop_assert_eq!(need.map(|n| n.strength).filter(|s| *s > Strength::Password), None);
            }
        }
    }
}
