//! The interactive sign-in as a state machine: from what a step proved and the facts about
//! the user, the tenant's rules and its conditional access policies, the next step. Pure: the
//! server gathers the facts, does what the answer says and renders it.

use serde::Serialize;
use time::OffsetDateTime;

use crate::conditional::{Control, Decision, Operator, Requirement};
use crate::ids::AccessPolicyId;
use crate::session::{MethodUse, Strength};

/// What the step just completed proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The password was right.
    Password { at: OffsetDateTime },
    /// After the password, a code from the authenticator app or a recovery code (`method`
    /// is its `amr` value).
    SecondFactor {
        password_at: OffsetDateTime,
        method: &'static str,
        at: OffsetDateTime,
    },
    /// A passkey: a whole sign-in on its own, and phishing-resistant.
    Passkey { at: OffsetDateTime },
    /// An enrolment link an administrator issued, and the first password set with it.
    Enrolment { at: OffsetDateTime },
}

impl Step {
    pub fn strength(&self) -> Strength {
        match self {
            Self::Password { .. } | Self::Enrolment { .. } => Strength::Password,
            Self::SecondFactor { .. } => Strength::Mfa,
            Self::Passkey { .. } => Strength::PhishingResistant,
        }
    }

    fn methods(&self) -> Vec<MethodUse> {
        let used = |method: &str, at: &OffsetDateTime| MethodUse {
            method: method.into(),
            at: *at,
        };
        match self {
            Self::Password { at } | Self::Enrolment { at } => vec![used("pwd", at)],
            Self::SecondFactor {
                password_at,
                method,
                at,
            } => vec![used("pwd", password_at), used(method, at)],
            Self::Passkey { at } => vec![used("hwk", at)],
        }
    }
}

/// What is known about the user and the request when a step completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// A confirmed authenticator app, in a tenant that allows them.
    pub has_totp: bool,
    /// A passkey, in a tenant where passkeys are in use.
    pub has_passkey: bool,
    /// The tenant's own rule (MFA for administrators or everyone) covers this user.
    pub tenant_requires_mfa: bool,
    /// An administrator set a password that must be changed.
    pub must_change_password: bool,
    /// What the tenant's conditional access policies decide, given what this step proved.
    pub access: Decision,
}

/// The session to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub strength: Strength,
    pub methods: Vec<MethodUse>,
    /// Held at the password page until a new password is chosen.
    pub must_change_password: bool,
    /// Held at the second-factor page until one is set up.
    pub must_enrol_mfa: bool,
    /// Held at the terms page until the tenant's terms of use are accepted.
    pub must_accept_terms: bool,
}

/// Why the sign-in cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Refusal {
    /// A conditional access policy blocks the request.
    Blocked { policy: AccessPolicyId },
    /// More than a password is required and the user's other factor is a passkey, which is a
    /// whole sign-in: they must sign in with it instead.
    PasskeyRequired,
    /// A demand nothing in this sign-in can meet (a compliant device, or a passkey for a user
    /// without one). `policy` is `None` for the tenant's own rule.
    Unsatisfiable {
        policy: Option<AccessPolicyId>,
        control: Control,
    },
}

impl Refusal {
    /// The audit reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Blocked { .. } => "blocked by conditional access",
            Self::PasskeyRequired => "passkey required",
            Self::Unsatisfiable { .. } => "conditional access requirement cannot be met",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask for the code from the authenticator app.
    SecondFactor,
    Open(Opening),
    Refuse(Refusal),
}

/// How one unmet control can be met in this sign-in, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Remedy {
    /// Already met by what the step proved.
    Met,
    /// Open the session held until the password changes.
    ChangePassword,
    /// Open the session held until the terms of use are accepted.
    AcceptTerms,
    /// Ask for the code now.
    AskCode,
    /// Open the session held until a second factor is set up.
    Enrol,
    /// Send the user back to sign in with their passkey.
    UsePasskey,
    Impossible,
}

fn remedy(control: Control, step: &Step, facts: &Facts) -> Remedy {
    let ask_code = facts.has_totp && matches!(step, Step::Password { .. });
    match control {
        _ if control_met(control, step) => Remedy::Met,
        Control::Mfa if ask_code => Remedy::AskCode,
        Control::Mfa if facts.has_passkey => Remedy::UsePasskey,
        // A user with an authenticator app who got past the code step still has one: the
        // code is what is missing, never a new factor.
        Control::Mfa if facts.has_totp => Remedy::Impossible,
        Control::Mfa => Remedy::Enrol,
        Control::PhishingResistant if facts.has_passkey => Remedy::UsePasskey,
        Control::PhishingResistant | Control::CompliantDevice => Remedy::Impossible,
        Control::PasswordChange => Remedy::ChangePassword,
        Control::TermsOfUse => Remedy::AcceptTerms,
    }
}

fn control_met(control: Control, step: &Step) -> bool {
    match control {
        Control::Mfa => step.strength() >= Strength::Mfa,
        Control::PhishingResistant => step.strength() >= Strength::PhishingResistant,
        Control::CompliantDevice | Control::PasswordChange | Control::TermsOfUse => false,
    }
}

/// What comes after `step`, given `facts`.
pub fn next(step: &Step, facts: &Facts) -> Next {
    let requirements: &[Requirement] = match &facts.access {
        Decision::Block { policy } => return Next::Refuse(Refusal::Blocked { policy: *policy }),
        Decision::Allow => &[],
        Decision::Require { requirements } => requirements,
    };
    // Each demand, with the cheapest way this sign-in can meet it.
    let tenant_rule = facts.tenant_requires_mfa && !control_met(Control::Mfa, step);
    let mut remedies: Vec<(Option<AccessPolicyId>, Control, Remedy)> = Vec::new();
    if tenant_rule {
        remedies.push((None, Control::Mfa, remedy(Control::Mfa, step, facts)));
    }
    for requirement in requirements {
        let options = requirement
            .controls
            .iter()
            .map(|c| (Some(requirement.policy), *c, remedy(*c, step, facts)));
        match requirement.operator {
            Operator::All => remedies.extend(options),
            Operator::Any => remedies.extend(options.min_by_key(|(_, _, r)| *r)),
        }
    }
    if let Some((policy, control, _)) = remedies.iter().find(|(_, _, r)| *r == Remedy::Impossible) {
        return Next::Refuse(Refusal::Unsatisfiable {
            policy: *policy,
            control: *control,
        });
    }
    let needs = |wanted: Remedy| remedies.iter().any(|(_, _, r)| *r == wanted);
    // A user with an authenticator app always gives a code after the password: the factor
    // they set up is theirs to use, whatever the policies ask.
    if needs(Remedy::AskCode) || (facts.has_totp && matches!(step, Step::Password { .. })) {
        return Next::SecondFactor;
    }
    if needs(Remedy::UsePasskey) {
        return Next::Refuse(Refusal::PasskeyRequired);
    }
    Next::Open(Opening {
        strength: step.strength(),
        methods: step.methods(),
        must_change_password: facts.must_change_password || needs(Remedy::ChangePassword),
        must_enrol_mfa: needs(Remedy::Enrol),
        must_accept_terms: needs(Remedy::AcceptTerms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn facts() -> Facts {
        Facts {
            has_totp: false,
            has_passkey: false,
            tenant_requires_mfa: false,
            must_change_password: false,
            access: Decision::Allow,
        }
    }

    fn requiring(operator: Operator, controls: &[Control]) -> Decision {
        Decision::Require {
            requirements: vec![Requirement {
                policy: AccessPolicyId::from_uuid(uuid::Uuid::from_u128(9)),
                operator,
                controls: controls.to_vec(),
            }],
        }
    }

    fn password() -> Step {
        Step::Password { at: now() }
    }

    fn code() -> Step {
        Step::SecondFactor {
            password_at: now(),
            method: "otp",
            at: now(),
        }
    }

    fn opened(next: Next) -> Opening {
        match next {
            Next::Open(opening) => opening,
            other => panic!("expected a session, got {other:?}"),
        }
    }

    #[test]
    fn terms_of_use_hold_the_session_until_accepted() {
        let asked = Facts {
            access: requiring(Operator::All, &[Control::TermsOfUse]),
            ..facts()
        };
        let opening = opened(next(&password(), &asked));
        assert!(opening.must_accept_terms);
        assert!(!opening.must_change_password && !opening.must_enrol_mfa);
        assert!(!opened(next(&password(), &facts())).must_accept_terms);
    }

    #[test]
    fn a_password_alone_opens_a_password_session() {
        let opening = opened(next(&password(), &facts()));
        assert_eq!(opening.strength, Strength::Password);
        assert!(!opening.must_enrol_mfa && !opening.must_change_password);
    }

    #[test]
    fn an_authenticator_app_is_always_asked_for() {
        let with_app = Facts {
            has_totp: true,
            ..facts()
        };
        assert_eq!(next(&password(), &with_app), Next::SecondFactor);
        assert_eq!(opened(next(&code(), &with_app)).strength, Strength::Mfa);
    }

    #[test]
    fn a_second_factor_required_of_a_passkey_user_sends_them_to_the_passkey() {
        let passkey_user = Facts {
            has_passkey: true,
            tenant_requires_mfa: true,
            ..facts()
        };
        assert_eq!(
            next(&password(), &passkey_user),
            Next::Refuse(Refusal::PasskeyRequired)
        );
        let opening = opened(next(&Step::Passkey { at: now() }, &passkey_user));
        assert_eq!(opening.strength, Strength::PhishingResistant);
    }

    #[test]
    fn without_a_factor_the_session_is_held_until_one_is_set_up() {
        let policy = Facts {
            access: requiring(Operator::All, &[Control::Mfa]),
            ..facts()
        };
        assert!(opened(next(&password(), &policy)).must_enrol_mfa);
        let tenant = Facts {
            tenant_requires_mfa: true,
            ..facts()
        };
        assert!(opened(next(&password(), &tenant)).must_enrol_mfa);
    }

    #[test]
    fn a_block_refuses_even_a_passkey() {
        let policy = AccessPolicyId::generate();
        let blocked = Facts {
            access: Decision::Block { policy },
            has_passkey: true,
            ..facts()
        };
        assert_eq!(
            next(&Step::Passkey { at: now() }, &blocked),
            Next::Refuse(Refusal::Blocked { policy })
        );
    }

    #[test]
    fn a_phishing_resistant_demand_is_met_only_by_a_passkey() {
        let strong = Facts {
            access: requiring(Operator::All, &[Control::PhishingResistant]),
            has_totp: true,
            ..facts()
        };
        assert!(matches!(
            next(&code(), &strong),
            Next::Refuse(Refusal::Unsatisfiable { .. })
        ));
        let with_passkey = Facts {
            has_passkey: true,
            ..strong
        };
        assert_eq!(
            next(&code(), &with_passkey),
            Next::Refuse(Refusal::PasskeyRequired)
        );
    }

    #[test]
    fn any_of_takes_the_way_that_can_be_gone_now() {
        let either = Facts {
            access: requiring(Operator::Any, &[Control::CompliantDevice, Control::Mfa]),
            has_totp: true,
            ..facts()
        };
        assert_eq!(next(&password(), &either), Next::SecondFactor);
        let all = Facts {
            access: requiring(Operator::All, &[Control::CompliantDevice, Control::Mfa]),
            ..either
        };
        assert!(matches!(
            next(&password(), &all),
            Next::Refuse(Refusal::Unsatisfiable {
                control: Control::CompliantDevice,
                ..
            })
        ));
    }

    #[test]
    fn a_password_change_demand_holds_the_session_at_the_password_page() {
        let risky = Facts {
            access: requiring(Operator::All, &[Control::PasswordChange]),
            ..facts()
        };
        assert!(opened(next(&password(), &risky)).must_change_password);
    }

    fn any_control() -> impl Strategy<Value = Control> {
        prop::sample::select(Control::ALL.to_vec())
    }

    fn any_decision() -> impl Strategy<Value = Decision> {
        let requirement = (prop::bool::ANY, prop::collection::vec(any_control(), 1..4)).prop_map(
            |(all, controls)| Requirement {
                policy: AccessPolicyId::from_uuid(uuid::Uuid::from_u128(1)),
                operator: if all { Operator::All } else { Operator::Any },
                controls,
            },
        );
        prop_oneof![
            Just(Decision::Allow),
            Just(Decision::Block {
                policy: AccessPolicyId::from_uuid(uuid::Uuid::from_u128(2))
            }),
            prop::collection::vec(requirement, 1..4)
                .prop_map(|requirements| Decision::Require { requirements }),
        ]
    }

    fn any_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(password()),
            Just(code()),
            Just(Step::Passkey { at: now() })
        ]
    }

    fn any_facts() -> impl Strategy<Value = Facts> {
        (
            prop::bool::ANY,
            prop::bool::ANY,
            prop::bool::ANY,
            prop::bool::ANY,
            any_decision(),
        )
            .prop_map(
                |(has_totp, has_passkey, tenant_requires_mfa, must_change_password, access)| {
                    Facts {
                        has_totp,
                        has_passkey,
                        tenant_requires_mfa,
                        must_change_password,
                        access,
                    }
                },
            )
    }

    /// Whether `opening` meets one demand: by what the step proved, or by the hold it
    /// carries.
    fn met(control: Control, step: &Step, opening: &Opening) -> bool {
        control_met(control, step)
            || (control == Control::Mfa && opening.must_enrol_mfa)
            || (control == Control::PasswordChange && opening.must_change_password)
            || (control == Control::TermsOfUse && opening.must_accept_terms)
    }

    proptest! {
        /// No session opens unless every enforced demand is met by what was proved or by
        /// the hold the session carries; a block never opens one; a code is asked only after
        /// a password, of a user with an app; the session proves no more than the step did.
        #[test]
        fn every_transition_keeps_the_rules(step in any_step(), facts in any_facts()) {
            let outcome = next(&step, &facts);
            match &outcome {
                Next::SecondFactor => {
                    prop_assert!(facts.has_totp);
                    prop_assert!(matches!(step, Step::Password { .. }), "a code after {step:?}");
                }
                Next::Open(opening) => {
                    prop_assert!(!matches!(facts.access, Decision::Block { .. }), "a session despite a block");
                    prop_assert_eq!(opening.strength, step.strength());
                    prop_assert!(!(facts.has_totp && matches!(step, Step::Password { .. })), "no code asked of a user with an app");
                    if facts.tenant_requires_mfa {
                        prop_assert!(met(Control::Mfa, &step, opening));
                    }
                    if facts.must_change_password {
                        prop_assert!(opening.must_change_password);
                    }
                    if let Decision::Require { requirements } = &facts.access {
                        for requirement in requirements {
                            let mut each = requirement.controls.iter().map(|c| met(*c, &step, opening));
                            let ok = match requirement.operator {
                                Operator::All => each.all(|m| m),
                                Operator::Any => each.any(|m| m),
                            };
                            prop_assert!(ok, "{requirement:?} not met by {opening:?}");
                        }
                    }
                    // Enrolment is a hold for those with no factor at all.
                    if opening.must_enrol_mfa {
                        prop_assert!(!facts.has_totp && !facts.has_passkey);
                    }
                }
                Next::Refuse(Refusal::Blocked { .. }) => {
                    prop_assert!(matches!(facts.access, Decision::Block { .. }), "blocked without a block");
                }
                Next::Refuse(_) => {
                    prop_assert!(!matches!(facts.access, Decision::Allow) || facts.tenant_requires_mfa);
                }
            }
        }
    }
}
