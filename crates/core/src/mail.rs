//! Messages the server mails to users, and the single-use links some of them carry: what each
//! is for, and which changes to an account its owner is told of whoever made them.

use serde::{Deserialize, Serialize};

use crate::audit::NewAuditEvent;
use crate::user_agent;

/// What a single-use link lets its holder do. One table holds them all: each is a keyed hash,
/// an expiry and a user, used once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkPurpose {
    /// Choose a first password (an invitation). Signs the person in.
    Enrol,
    /// Choose a new password after forgetting it. Does not sign in: the second factor is
    /// still asked at the next sign-in.
    Reset,
    /// Prove that the address on the account is the user's.
    Verify,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrol => "enrol",
            Self::Reset => "reset",
            Self::Verify => "verify",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enrol" => Some(Self::Enrol),
            "reset" => Some(Self::Reset),
            "verify" => Some(Self::Verify),
            _ => None,
        }
    }

    /// The purposes a new link of this one replaces when still unused: a newer way to choose
    /// a password makes older ones useless, whichever journey they came from.
    pub fn replaces(self) -> &'static [&'static str] {
        match self {
            Self::Enrol | Self::Reset => &["enrol", "reset"],
            Self::Verify => &["verify"],
        }
    }

    /// How long a link of this purpose works unless its creator says otherwise: a reset
    /// short enough that an old mailbox holds nothing useful, the others long enough to be
    /// found after a weekend.
    pub fn default_hours(self) -> u32 {
        match self {
            Self::Reset => 1,
            Self::Enrol | Self::Verify => 72,
        }
    }

    /// The message that carries a link of this purpose.
    pub fn message(self) -> MailKind {
        match self {
            Self::Enrol => MailKind::Invitation,
            Self::Reset => MailKind::PasswordReset,
            Self::Verify => MailKind::AddressVerification,
        }
    }
}

/// The messages there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    Invitation,
    PasswordReset,
    AddressVerification,
    PasswordChanged,
    MethodAdded,
    MethodRemoved,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
            Self::AddressVerification => "address_verification",
            Self::PasswordChanged => "password_changed",
            Self::MethodAdded => "method_added",
            Self::MethodRemoved => "method_removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Invitation,
            Self::PasswordReset,
            Self::AddressVerification,
            Self::PasswordChanged,
            Self::MethodAdded,
            Self::MethodRemoved,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == s)
    }
}

/// Most reset or verification messages (each kind) one account is sent in an hour, however
/// often anyone asks: enough for a person who mistyped, too few to flood a mailbox — which
/// may be a stranger's, if the address on the account is wrong.
pub const LINKS_PER_HOUR: i64 = 3;

impl LinkPurpose {
    /// Whether mailing links of this purpose is limited to `LINKS_PER_HOUR`: anyone may ask for
    /// a reset, and a user for a verification; invitations come only from administrators.
    pub fn limited(self) -> bool {
        !matches!(self, Self::Enrol)
    }
}

/// A notice to a user of a change to how they sign in: what it was, who made it, from where.
/// Nothing secret: it is stored as it is and shown in the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: MailKind,
    /// The user the change was made to (the recipient).
    pub user_id: String,
    /// The sign-in method, in words ("a passkey named “Laptop”").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Whether the user made the change themselves (else an administrator or the server did).
    pub by_self: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// The browser or program it came from, in words ("Firefox on Windows").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The notice an audited change earns its user, if any: a password set or reset, a sign-in
/// method added or removed. A person whose account is taken over learns of it this way, so
/// the notice is sent whoever made the change. Choosing the first password with an
/// invitation is not a change the person needs telling of.
pub fn notice_for(event: &NewAuditEvent) -> Option<Notice> {
    let target = event.target.as_ref().filter(|t| t.kind == "user")?;
    let details = &event.details;
    let named = |what: &str| match details.get("name").and_then(|n| n.as_str()) {
        Some(name) if !name.is_empty() => format!("{what} named “{name}”"),
        _ => what.to_owned(),
    };
    let (kind, method) = match event.action.as_str() {
        "user.password.set" | "user.password.reset" => (MailKind::PasswordChanged, None),
        "user.password.remove" => (MailKind::MethodRemoved, Some("your password".to_owned())),
        "user.mfa.enrol" => (MailKind::MethodAdded, Some("an authenticator app".into())),
        "user.mfa.remove" => (MailKind::MethodRemoved, Some("an authenticator app".into())),
        "user.mfa.reset" => (
            MailKind::MethodRemoved,
            Some("your second factors (authenticator app, passkeys and recovery codes)".into()),
        ),
        "user.passkey.add" => (MailKind::MethodAdded, Some(named("a passkey"))),
        "user.passkey.remove" => (MailKind::MethodRemoved, Some(named("a passkey"))),
        "user.recovery_codes.regenerate" => {
            (MailKind::MethodAdded, Some("new recovery codes".into()))
        }
        _ => return None,
    };
    let by_self =
        event.actor.kind == "user" && event.actor.id.as_deref() == Some(target.id.as_str());
    Some(Notice {
        kind,
        user_id: target.id.clone(),
        method,
        by_self,
        at: event.at,
        source_ip: event.origin.source_ip.clone(),
        device: event
            .origin
            .user_agent
            .as_deref()
            .map(|agent| user_agent::describe(Some(agent))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, Origin, Outcome, Target};

    fn event(action: &str, actor: Actor, details: serde_json::Value) -> NewAuditEvent {
        NewAuditEvent {
            tenant_id: crate::TenantId::generate(),
            at: time::OffsetDateTime::UNIX_EPOCH,
            actor,
            action: action.into(),
            target: Some(Target::new("user", "u1")),
            outcome: Outcome::Success,
            reason: None,
            origin: Origin {
                source_ip: Some("192.0.2.7".into()),
                user_agent: Some(
                    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0".into(),
                ),
                request_id: None,
            },
            details,
        }
    }

    #[test]
    fn changes_to_sign_in_methods_earn_a_notice_naming_who_and_where() {
        let me = Actor {
            kind: "user".into(),
            id: Some("u1".into()),
            display: None,
            authentication: None,
        };
        let added = notice_for(&event(
            "user.passkey.add",
            me,
            serde_json::json!({"name": "Laptop"}),
        ))
        .expect("a notice");
        assert_eq!(added.kind, MailKind::MethodAdded);
        assert_eq!(added.method.as_deref(), Some("a passkey named “Laptop”"));
        assert!(added.by_self);
        assert_eq!(added.device.as_deref(), Some("Firefox on Linux"));
        let admin = Actor::system();
        let reset = notice_for(&event("user.password.set", admin, serde_json::json!({})))
            .expect("a notice");
        assert_eq!(reset.kind, MailKind::PasswordChanged);
        assert!(!reset.by_self);
    }

    #[test]
    fn other_changes_and_other_targets_earn_none() {
        assert!(
            notice_for(&event(
                "user.update",
                Actor::system(),
                serde_json::json!({})
            ))
            .is_none()
        );
        assert!(
            notice_for(&event(
                "user.enrolment_link.redeem",
                Actor::system(),
                serde_json::json!({})
            ))
            .is_none()
        );
        let mut group = event("user.password.set", Actor::system(), serde_json::json!({}));
        group.target = Some(Target::new("group", "g1"));
        assert!(notice_for(&group).is_none());
    }

    #[test]
    fn names_round_trip() {
        for purpose in [LinkPurpose::Enrol, LinkPurpose::Reset, LinkPurpose::Verify] {
            assert_eq!(LinkPurpose::parse(purpose.as_str()), Some(purpose));
        }
        for kind in [
            MailKind::Invitation,
            MailKind::PasswordReset,
            MailKind::AddressVerification,
            MailKind::PasswordChanged,
            MailKind::MethodAdded,
            MailKind::MethodRemoved,
        ] {
            assert_eq!(MailKind::parse(kind.as_str()), Some(kind));
        }
    }
}
