//! Sign-in sessions: what a session proves (its authentication strength and the methods used,
//! each with its time) and when it ends (idle and absolute timeouts).

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ids::{SessionId, TenantId, UserId};
use crate::secrets::{SecretError, random_bytes};
use crate::time_util::to_micros;

/// How strongly a session's user proved who they are, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    Password,
    Mfa,
    PhishingResistant,
}

impl Strength {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Mfa => "mfa",
            Self::PhishingResistant => "phishing_resistant",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Password, Self::Mfa, Self::PhishingResistant]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One authentication method used in a session, with its RFC 8176 `amr` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodUse {
    /// `pwd`, `otp`, `hwk`, …
    pub method: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A session as stored and as shown to its user (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    pub id: SessionId,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub strength: Strength,
    pub methods: Vec<MethodUse>,
    /// The user must choose a new password before doing anything else.
    pub must_change_password: bool,
    /// The tenant requires a second factor the user has not set up: until they do, this
    /// session reaches only the authenticator set-up page.
    pub must_enrol_mfa: bool,
    /// A policy asks for the tenant's terms of use: until they are accepted, this session
    /// reaches only the terms page.
    #[serde(default)]
    pub must_accept_terms: bool,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub idle_expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub absolute_expires_at: OffsetDateTime,
}

impl Session {
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.idle_expires_at && now < self.absolute_expires_at
    }

    /// When the user last proved who they are (OIDC's `auth_time`).
    pub fn authenticated_at(&self) -> OffsetDateTime {
        self.methods
            .iter()
            .map(|m| m.at)
            .max()
            .unwrap_or(self.created_at)
    }

    /// The methods behind the session as RFC 8176 `amr` values, with `mfa` when they are two
    /// factors.
    pub fn amr(&self) -> Vec<String> {
        let mut values: Vec<String> = Vec::new();
        for used in &self.methods {
            let value = match used.method.as_str() {
                "recovery_code" => "otp",
                other => other,
            };
            if !values.iter().any(|v| v == value) {
                values.push(value.to_owned());
            }
        }
        if self.strength >= Strength::Mfa && values.len() > 1 {
            values.push("mfa".into());
        }
        values
    }

    /// The session as it stood at `at` (a grant's `auth_time`, kept to the microsecond): only
    /// the proofs given by then. A token is judged by the sign-in it was issued from, never by
    /// proofs its session gathered later, so stepping up in the browser does not strengthen a
    /// token handed out before.
    pub fn as_of(&self, at: OffsetDateTime) -> Session {
        let at = to_micros(at);
        let mut then = self.clone();
        then.methods.retain(|m| to_micros(m.at) <= at);
        then.strength = Strength::proven_by(&then.methods, None).unwrap_or(Strength::Password);
        then
    }

    /// What the user must still prove for `need`: only what is missing. Freshness counts per
    /// method, so a stale two-factor session re-proves both factors, while a fresh password
    /// session that needs MFA is asked for the second factor alone.
    pub fn step_up(&self, need: Assurance, now: OffsetDateTime) -> StepUp {
        let have = match need.max_age {
            Some(age) => Strength::proven_by(&self.methods, Some(now - age)),
            None => Some(self.strength),
        };
        if have >= Some(need.strength) {
            StepUp::Satisfied
        } else if need.strength == Strength::PhishingResistant {
            StepUp::Passkey
        } else if have.is_none() {
            StepUp::Password
        } else {
            StepUp::SecondFactor
        }
    }
}

/// What a page demands of the session before it goes on: a minimum strength, and optionally
/// how recent the proof must be (OIDC's `max_age`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assurance {
    pub strength: Strength,
    pub max_age: Option<Duration>,
}

/// The next thing to ask of a user whose session falls short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUp {
    Satisfied,
    /// Only a passkey reaches phishing-resistant strength.
    Passkey,
    /// Nothing recent enough: the password again (or a passkey, which is enough on its own).
    Password,
    /// The password is recent, but a second factor (or a passkey) is missing.
    SecondFactor,
}

/// How many method uses a session remembers: step-ups append, the oldest go.
pub const MAX_METHODS: usize = 8;

impl Strength {
    /// The strength that `methods` used at or after `since` prove together.
    pub fn proven_by(methods: &[MethodUse], since: Option<OffsetDateTime>) -> Option<Self> {
        let used = |names: &[&str]| {
            methods
                .iter()
                .any(|m| names.contains(&m.method.as_str()) && since.is_none_or(|s| m.at >= s))
        };
        if used(&["hwk"]) {
            Some(Self::PhishingResistant)
        } else if used(&["pwd"]) && used(&["otp", "recovery_code"]) {
            Some(Self::Mfa)
        } else if used(&["pwd"]) {
            Some(Self::Password)
        } else {
            None
        }
    }
}

/// Who must use a second factor to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MfaRequired {
    Nobody,
    /// Administrators: anyone who may do any of Portcullis's own actions, by any role
    /// (built-in or custom), directly or through a group.
    Administrators,
    Everyone,
}

impl MfaRequired {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nobody => "nobody",
            Self::Administrators => "administrators",
            Self::Everyone => "everyone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Nobody, Self::Administrators, Self::Everyone]
            .into_iter()
            .find(|v| v.as_str() == s)
    }

    /// Whether a user holding roles (`is_administrator`) must use a second factor.
    pub fn applies_to(self, is_administrator: bool) -> bool {
        match self {
            Self::Nobody => false,
            Self::Administrators => is_administrator,
            Self::Everyone => true,
        }
    }
}

/// A tenant's sign-in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignInSettings {
    pub mfa_required: MfaRequired,
    /// Whether users may use authenticator apps (TOTP).
    pub allow_totp: bool,
    /// Whether users may register and sign in with passkeys (default true). While MFA is
    /// required, authenticator apps or passkeys (or both) must stay allowed.
    #[serde(default = "allowed")]
    pub allow_passkeys: bool,
    pub password_policy: crate::password::PasswordPolicy,
    /// The defaults when left out.
    #[serde(default)]
    pub lockout: LockoutPolicy,
}

impl Default for SignInSettings {
    fn default() -> Self {
        Self {
            mfa_required: MfaRequired::Nobody,
            allow_totp: true,
            allow_passkeys: true,
            password_policy: crate::password::PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
        }
    }
}

fn allowed() -> bool {
    true
}

/// How an account backs off after failed passwords or codes: the first `free_failures` cost
/// nothing; then each failure doubles the wait, starting at one second, up to
/// `max_wait_seconds`. A success, or 15 minutes without failure, forgets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LockoutPolicy {
    /// 1–100 (default 5).
    pub free_failures: u32,
    /// 1–86400 (default 900: 15 minutes).
    pub max_wait_seconds: u32,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            max_wait_seconds: 900,
        }
    }
}

impl SignInSettings {
    pub fn validate(&self) -> Result<(), crate::ValidationError> {
        self.password_policy.validate()?;
        if !(1..=100).contains(&self.lockout.free_failures) {
            return Err(crate::ValidationError::new(
                "free_failures",
                "must be between 1 and 100",
            ));
        }
        if !(1..=86_400).contains(&self.lockout.max_wait_seconds) {
            return Err(crate::ValidationError::new(
                "max_wait_seconds",
                "must be between 1 and 86400 (one day)",
            ));
        }
        if self.mfa_required != MfaRequired::Nobody && !self.allow_totp && !self.allow_passkeys {
            return Err(crate::ValidationError::new(
                "allow_totp",
                "authenticator apps or passkeys must be allowed while MFA is required: they are the second factors",
            ));
        }
        Ok(())
    }
}

/// How long sessions last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTimeouts {
    /// Ended after this long without a request.
    pub idle: Duration,
    /// Ended this long after sign-in, however active.
    pub absolute: Duration,
}

impl Default for SessionTimeouts {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

impl SessionTimeouts {
    /// The idle deadline after activity at `now`, never past the absolute one.
    pub fn idle_deadline(&self, now: OffsetDateTime, absolute: OffsetDateTime) -> OffsetDateTime {
        (now + self.idle).min(absolute)
    }
}

/// A fresh session token for the cookie: 32 random bytes, base64url. Only its keyed hash is
/// stored.
pub fn new_session_token() -> Result<String, SecretError> {
    use base64::Engine;
    let bytes = random_bytes::<32>()?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strengths_order_and_round_trip() {
        assert!(Strength::Password < Strength::Mfa);
        assert!(Strength::Mfa < Strength::PhishingResistant);
        for s in [
            Strength::Password,
            Strength::Mfa,
            Strength::PhishingResistant,
        ] {
            assert_eq!(Strength::parse(s.as_str()), Some(s));
        }
        assert_eq!(Strength::parse("weak"), None);
    }

    fn session(strength: Strength, methods: &[(&str, i64)]) -> Session {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        Session {
            id: SessionId::generate(),
            tenant_id: TenantId::generate(),
            user_id: UserId::generate(),
            strength,
            methods: methods
                .iter()
                .map(|(m, minute)| MethodUse {
                    method: (*m).into(),
                    at: start + Duration::minutes(*minute),
                })
                .collect(),
            must_change_password: false,
            must_enrol_mfa: false,
            must_accept_terms: false,
            source_ip: None,
            user_agent: None,
            created_at: start,
            last_seen_at: start,
            idle_expires_at: start + Duration::hours(1),
            absolute_expires_at: start + Duration::hours(12),
        }
    }

    fn need(strength: Strength, max_age_minutes: Option<i64>) -> Assurance {
        Assurance {
            strength,
            max_age: max_age_minutes.map(Duration::minutes),
        }
    }

    #[test]
    fn step_up_asks_only_for_what_is_missing() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let at = |minute: i64| start + Duration::minutes(minute);
        let password = session(Strength::Password, &[("pwd", 0)]);
        assert_eq!(
            password.step_up(need(Strength::Password, None), at(600)),
            StepUp::Satisfied
        );
        assert_eq!(
            password.step_up(need(Strength::Mfa, Some(15)), at(5)),
            StepUp::SecondFactor,
            "a fresh password needs only the second factor"
        );
        assert_eq!(
            password.step_up(need(Strength::Password, Some(15)), at(20)),
            StepUp::Password
        );
        assert_eq!(
            password.step_up(need(Strength::PhishingResistant, None), at(1)),
            StepUp::Passkey
        );
        let mfa = session(Strength::Mfa, &[("pwd", 0), ("otp", 1)]);
        assert_eq!(
            mfa.step_up(need(Strength::Mfa, Some(15)), at(10)),
            StepUp::Satisfied
        );
        assert_eq!(
            mfa.step_up(need(Strength::Mfa, Some(15)), at(60)),
            StepUp::Password,
            "a stale second factor does not carry a fresh password to MFA"
        );
        let re_proved = session(Strength::Mfa, &[("pwd", 0), ("otp", 1), ("pwd", 60)]);
        assert_eq!(
            re_proved.step_up(need(Strength::Mfa, Some(15)), at(61)),
            StepUp::SecondFactor
        );
        let passkey = session(Strength::PhishingResistant, &[("hwk", 0)]);
        assert_eq!(
            passkey.step_up(need(Strength::Mfa, Some(15)), at(10)),
            StepUp::Satisfied
        );
        assert_eq!(
            passkey.step_up(need(Strength::PhishingResistant, Some(15)), at(30)),
            StepUp::Passkey
        );
        assert_eq!(passkey.authenticated_at(), at(0));
    }

    #[test]
    fn a_token_is_judged_by_its_session_as_it_was_when_issued() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let at = |minute: i64| start + Duration::minutes(minute);
        // Signed in with a password at 0, token issued at 1, second factor at 5.
        let same_second = session(Strength::Mfa, &[("pwd", 0)]);
        let mut same_second = same_second;
        same_second.methods.push(MethodUse {
            method: "otp".into(),
            at: at(0) + Duration::milliseconds(300),
        });
        assert_eq!(
            same_second
                .as_of(at(0) + Duration::milliseconds(100))
                .strength,
            Strength::Password
        );
        let stepped = session(Strength::Mfa, &[("pwd", 0), ("otp", 5)]);
        let issued_then = stepped.as_of(at(1));
        assert_eq!(issued_then.strength, Strength::Password);
        assert_eq!(
            issued_then.step_up(need(Strength::Mfa, None), at(6)),
            StepUp::SecondFactor
        );
        // A token issued after the step-up has both, even in the same second.
        let issued_after = stepped.as_of(at(5));
        assert_eq!(issued_after.strength, Strength::Mfa);
        assert_eq!(
            issued_after.step_up(need(Strength::Mfa, Some(15)), at(6)),
            StepUp::Satisfied
        );
    }

    #[test]
    fn idle_deadline_never_passes_the_absolute_one() {
        let t = SessionTimeouts::default();
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        assert_eq!(t.idle_deadline(now, now + Duration::hours(1)), now + t.idle);
        assert_eq!(
            t.idle_deadline(now, now + Duration::minutes(5)),
            now + Duration::minutes(5)
        );
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_session_token().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_session_token().unwrap());
    }
}
