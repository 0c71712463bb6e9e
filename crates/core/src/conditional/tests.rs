//! The evaluator, condition by condition and rule by rule.

use super::*;
use crate::ids::{GroupId, ServicePrincipalId};

fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
}

fn alice() -> UserId {
    UserId::from_uuid(uuid::Uuid::from_u128(1))
}

fn request() -> Request {
    Request {
        who: Who::User {
            id: alice(),
            groups: vec![],
            administrator: false,
            guest: false,
        },
        application: Application::Account,
        address: Some("203.0.113.9".parse().unwrap()),
        country: Country::parse("NZ"),
        geo_known: true,
        platform: Platform::Linux,
        device: DeviceState::Unregistered,
        client_type: ClientType::Browser,
        sign_in_risk: RiskLevel::None,
        user_risk: RiskLevel::None,
        // A Wednesday, 10:00 in UTC.
        at: at("2026-12-02T10:00:00Z"),
    }
}

fn policy(grant: Grant) -> AccessPolicy {
    AccessPolicy {
        id: AccessPolicyId::generate(),
        name: "test".into(),
        state: PolicyState::Enabled,
        include: Principals {
            all_users: true,
            ..Principals::default()
        },
        exclude: Principals::default(),
        applications: Selection {
            include: vec![ApplicationRef::All],
            exclude: vec![],
        },
        conditions: Conditions::default(),
        grant,
        session: SessionControls::default(),
    }
}

fn mfa() -> Grant {
    Grant::Require {
        operator: Operator::All,
        controls: vec![Control::Mfa],
    }
}

fn password() -> Proofs {
    Proofs {
        strength: Some(Strength::Password),
        ..Proofs::default()
    }
}

fn office() -> NamedLocation {
    NamedLocation {
        id: NamedLocationId::from_uuid(uuid::Uuid::from_u128(7)),
        name: "office".into(),
        trusted: true,
        ranges: vec!["203.0.113.0/24".parse().unwrap()],
        countries: vec![],
        include_unknown_countries: false,
    }
}

fn decide(policies: Vec<AccessPolicy>, request: &Request, proofs: &Proofs) -> Evaluation {
    Compiled::build(policies, &[office()], &AccessPolicySettings::default())
        .evaluate(request, proofs)
}

fn applies(policy: AccessPolicy, request: &Request) -> bool {
    decide(vec![policy], request, &password()).results[0].outcome != Outcome::NotApplied
}

#[test]
fn each_condition_decides_whether_a_policy_applies() {
    type Case = (&'static str, fn(&mut AccessPolicy), fn(&mut Request), bool);
    let cases: &[Case] = &[
        ("no conditions", |_| {}, |_| {}, true),
        (
            "a user named",
            |p| {
                p.include = Principals {
                    users: vec![alice()],
                    ..Default::default()
                }
            },
            |_| {},
            true,
        ),
        (
            "another user named",
            |p| {
                p.include = Principals {
                    users: vec![UserId::generate()],
                    ..Default::default()
                }
            },
            |_| {},
            false,
        ),
        (
            "a group the user is in",
            |p| {
                p.include = Principals {
                    groups: vec![GroupId::from_uuid(uuid::Uuid::from_u128(3))],
                    ..Default::default()
                }
            },
            |r| {
                r.who = Who::User {
                    id: alice(),
                    groups: vec![GroupId::from_uuid(uuid::Uuid::from_u128(3))],
                    administrator: false,
                    guest: false,
                }
            },
            true,
        ),
        (
            "administrators, for a non-administrator",
            |p| {
                p.include = Principals {
                    administrators: true,
                    ..Default::default()
                }
            },
            |_| {},
            false,
        ),
        (
            "administrators, for an administrator",
            |p| {
                p.include = Principals {
                    administrators: true,
                    ..Default::default()
                }
            },
            |r| {
                r.who = Who::User {
                    id: alice(),
                    groups: vec![],
                    administrator: true,
                    guest: false,
                }
            },
            true,
        ),
        (
            "guests, for a guest",
            |p| {
                p.include = Principals {
                    guests: true,
                    ..Default::default()
                }
            },
            |r| {
                r.who = Who::User {
                    id: alice(),
                    groups: vec![],
                    administrator: false,
                    guest: true,
                }
            },
            true,
        ),
        (
            "users, for a workload",
            |_| {},
            |r| r.who = Who::ServicePrincipal(ServicePrincipalId::generate()),
            false,
        ),
        (
            "exclusion wins over inclusion",
            |p| {
                p.exclude = Principals {
                    users: vec![alice()],
                    ..Default::default()
                }
            },
            |_| {},
            false,
        ),
        (
            "another application",
            |p| {
                p.applications.include = vec![ApplicationRef::Only(Application::Client(
                    ServicePrincipalId::generate(),
                ))]
            },
            |_| {},
            false,
        ),
        (
            "an excluded application",
            |p| p.applications.exclude = vec![ApplicationRef::Only(Application::Account)],
            |_| {},
            false,
        ),
        (
            "the admin API",
            |p| p.applications.include = vec![ApplicationRef::Only(Application::AdminApi)],
            |r| r.application = Application::AdminApi,
            true,
        ),
        (
            "from a trusted location, when trusted ones are excluded",
            |p| {
                p.conditions.locations = Some(Selection {
                    include: vec![LocationRef::Any],
                    exclude: vec![LocationRef::Trusted],
                })
            },
            |_| {},
            false,
        ),
        (
            "from elsewhere, when trusted ones are excluded",
            |p| {
                p.conditions.locations = Some(Selection {
                    include: vec![LocationRef::Any],
                    exclude: vec![LocationRef::Trusted],
                })
            },
            |r| r.address = Some("198.51.100.1".parse().unwrap()),
            true,
        ),
        (
            "at the named location included",
            |p| {
                p.conditions.locations = Some(Selection {
                    include: vec![LocationRef::Named(office().id)],
                    exclude: vec![],
                })
            },
            |_| {},
            true,
        ),
        (
            "a location that no longer exists",
            |p| {
                p.conditions.locations = Some(Selection {
                    include: vec![LocationRef::Named(NamedLocationId::generate())],
                    exclude: vec![],
                })
            },
            |_| {},
            false,
        ),
        (
            "an included platform",
            |p| {
                p.conditions.platforms = Some(Selection {
                    include: vec![Platform::Linux],
                    exclude: vec![],
                })
            },
            |_| {},
            true,
        ),
        (
            "an excluded platform",
            |p| {
                p.conditions.platforms = Some(Selection {
                    include: vec![],
                    exclude: vec![Platform::Linux],
                })
            },
            |_| {},
            false,
        ),
        (
            "a device state not listed",
            |p| p.conditions.device_states = Some(vec![DeviceState::Compliant]),
            |_| {},
            false,
        ),
        (
            "a client type listed",
            |p| p.conditions.client_types = Some(vec![ClientType::Browser, ClientType::Native]),
            |_| {},
            true,
        ),
        (
            "a client type not listed",
            |p| p.conditions.client_types = Some(vec![ClientType::Other]),
            |_| {},
            false,
        ),
        (
            "a sign-in risk listed",
            |p| p.conditions.sign_in_risk = Some(vec![RiskLevel::High]),
            |r| r.sign_in_risk = RiskLevel::High,
            true,
        ),
        (
            "a sign-in risk not listed",
            |p| p.conditions.sign_in_risk = Some(vec![RiskLevel::High]),
            |r| r.sign_in_risk = RiskLevel::Medium,
            false,
        ),
        (
            "a user risk listed",
            |p| p.conditions.user_risk = Some(vec![RiskLevel::Low, RiskLevel::High]),
            |r| r.user_risk = RiskLevel::Low,
            true,
        ),
        (
            "inside office hours in Auckland (23:00 in Auckland is outside)",
            |p| {
                p.conditions.times = Some(Selection {
                    include: vec![TimeWindow {
                        time_zone: "Pacific/Auckland".into(),
                        days: vec![
                            Weekday::Monday,
                            Weekday::Tuesday,
                            Weekday::Wednesday,
                            Weekday::Thursday,
                            Weekday::Friday,
                        ],
                        from: "08:00".into(),
                        until: "18:00".into(),
                    }],
                    exclude: vec![],
                })
            },
            // 10:00 UTC on Wednesday is 23:00 Wednesday in Auckland (NZDT, +13).
            |_| {},
            false,
        ),
        (
            "a night window running past midnight",
            |p| {
                p.conditions.times = Some(Selection {
                    include: vec![TimeWindow {
                        time_zone: "Pacific/Auckland".into(),
                        days: vec![Weekday::Wednesday],
                        from: "22:00".into(),
                        until: "06:00".into(),
                    }],
                    exclude: vec![],
                })
            },
            |_| {},
            true,
        ),
        (
            "the morning after a night window's day",
            |p| {
                p.conditions.times = Some(Selection {
                    include: vec![TimeWindow {
                        time_zone: "UTC".into(),
                        days: vec![Weekday::Tuesday],
                        from: "22:00".into(),
                        until: "11:00".into(),
                    }],
                    exclude: vec![],
                })
            },
            |_| {},
            true,
        ),
    ];
    for (name, shape, situation, expected) in cases {
        let mut p = policy(mfa());
        shape(&mut p);
        let mut r = request();
        situation(&mut r);
        assert_eq!(applies(p, &r), *expected, "{name}");
    }
}

#[test]
fn controls_are_satisfied_by_what_was_proved() {
    let cases = [
        (vec![Control::Mfa], Operator::All, password(), false),
        (
            vec![Control::Mfa],
            Operator::All,
            Proofs {
                strength: Some(Strength::Mfa),
                ..Proofs::default()
            },
            true,
        ),
        (
            vec![Control::PhishingResistant],
            Operator::All,
            Proofs {
                strength: Some(Strength::Mfa),
                ..Proofs::default()
            },
            false,
        ),
        (
            vec![Control::Mfa],
            Operator::All,
            Proofs {
                strength: Some(Strength::PhishingResistant),
                ..Proofs::default()
            },
            true,
        ),
        (
            vec![Control::Mfa, Control::CompliantDevice],
            Operator::All,
            Proofs {
                strength: Some(Strength::Mfa),
                ..Proofs::default()
            },
            false,
        ),
        (
            vec![Control::Mfa, Control::CompliantDevice],
            Operator::Any,
            Proofs {
                strength: Some(Strength::Password),
                compliant_device: true,
                ..Proofs::default()
            },
            true,
        ),
        (
            vec![Control::PasswordChange],
            Operator::All,
            Proofs {
                strength: Some(Strength::Password),
                password_changed: true,
                ..Proofs::default()
            },
            true,
        ),
    ];
    for (controls, operator, proofs, satisfied) in cases {
        let grant = Grant::Require {
            operator,
            controls: controls.clone(),
        };
        let evaluation = decide(vec![policy(grant)], &request(), &proofs);
        let expected = if satisfied {
            Outcome::Success
        } else {
            Outcome::Interrupted
        };
        assert_eq!(
            evaluation.results[0].outcome, expected,
            "{controls:?} {operator:?} {proofs:?}"
        );
        assert_eq!(evaluation.decision == Decision::Allow, satisfied);
    }
}

#[test]
fn every_enforced_policy_must_be_satisfied_and_a_block_wins() {
    let needs_mfa = policy(mfa());
    let needs_device = policy(Grant::Require {
        operator: Operator::All,
        controls: vec![Control::CompliantDevice],
    });
    let evaluation = decide(
        vec![needs_mfa.clone(), needs_device.clone()],
        &request(),
        &password(),
    );
    let Decision::Require { requirements } = &evaluation.decision else {
        panic!("expected requirements: {evaluation:?}");
    };
    assert_eq!(requirements.len(), 2);

    let block = policy(Grant::Block);
    let evaluation = decide(
        vec![needs_mfa, block.clone(), needs_device],
        &request(),
        &password(),
    );
    assert_eq!(evaluation.decision, Decision::Block { policy: block.id });
    assert_eq!(evaluation.refused().results[0].outcome, Outcome::Failure);
}

#[test]
fn report_only_and_disabled_policies_are_never_enforced() {
    let mut watching = policy(Grant::Block);
    watching.state = PolicyState::ReportOnly;
    let mut off = policy(Grant::Block);
    off.state = PolicyState::Disabled;
    let evaluation = decide(vec![watching.clone(), off], &request(), &password());
    assert_eq!(evaluation.decision, Decision::Allow);
    // The report-only result is recorded; the disabled policy is not evaluated at all.
    assert_eq!(evaluation.results.len(), 1);
    assert_eq!(evaluation.results[0].policy, watching.id);
    assert_eq!(evaluation.results[0].outcome, Outcome::Failure);
}

#[test]
fn session_controls_take_the_strictest_of_the_policies_that_applied() {
    let mut short = policy(mfa());
    short.session = SessionControls {
        sign_in_frequency_minutes: Some(60),
        max_token_lifetime_minutes: Some(30),
        persistent_browser: Some(true),
    };
    let mut strict = policy(mfa());
    strict.session = SessionControls {
        sign_in_frequency_minutes: Some(600),
        max_token_lifetime_minutes: None,
        persistent_browser: Some(false),
    };
    let mut elsewhere = policy(mfa());
    elsewhere.include = Principals {
        guests: true,
        ..Default::default()
    };
    elsewhere.session.sign_in_frequency_minutes = Some(1);
    let mfa_done = Proofs {
        strength: Some(Strength::Mfa),
        ..Proofs::default()
    };
    let evaluation = decide(vec![short, strict, elsewhere], &request(), &mfa_done);
    assert_eq!(
        evaluation.session,
        SessionControls {
            sign_in_frequency_minutes: Some(60),
            max_token_lifetime_minutes: Some(30),
            persistent_browser: Some(false),
        }
    );
}

#[test]
fn emergency_accounts_escape_every_policy_that_does_not_name_them() {
    let settings = AccessPolicySettings {
        emergency_accounts: vec![alice()],
        ..AccessPolicySettings::default()
    };
    let block = policy(Grant::Block);
    let mut naming = policy(Grant::Block);
    naming.include.users = vec![alice()];
    let compiled = Compiled::build(vec![block, naming.clone()], &[], &settings);
    let evaluation = compiled.evaluate(&request(), &password());
    assert_eq!(evaluation.results[0].outcome, Outcome::NotApplied);
    assert_eq!(evaluation.decision, Decision::Block { policy: naming.id });
    let why = &compiled.explain(&request())[0];
    assert!(
        why.checks
            .iter()
            .any(|c| c.condition == Condition::EmergencyAccess && !c.applies)
    );
}

#[test]
fn a_block_of_every_administrator_is_refused_unless_someone_can_still_get_in() {
    let emergency = alice();
    let mut block = policy(Grant::Block);
    assert!(block.locks_out(&[]).is_some(), "no emergency account");
    assert!(
        block.locks_out(&[emergency]).is_none(),
        "the emergency account escapes it"
    );
    block.include.users = vec![emergency];
    assert!(
        block.locks_out(&[emergency]).is_some(),
        "it names the emergency account"
    );
    block.exclude.users = vec![UserId::generate()];
    assert!(
        block.locks_out(&[emergency]).is_none(),
        "someone is excluded"
    );

    let mut admins = policy(Grant::Block);
    admins.include = Principals {
        administrators: true,
        ..Default::default()
    };
    // Conditions do not make it safe: a VPN or a moved GeoIP range meets them by accident.
    admins.conditions.client_types = Some(vec![ClientType::Browser]);
    assert!(admins.locks_out(&[]).is_some());
    admins.state = PolicyState::ReportOnly;
    assert!(admins.locks_out(&[]).is_none(), "report-only never blocks");
    assert!(
        policy(mfa()).locks_out(&[]).is_none(),
        "a second factor locks no one out"
    );
    let mut one_app = policy(Grant::Block);
    one_app.applications.include = vec![ApplicationRef::Only(Application::Client(
        ServicePrincipalId::generate(),
    ))];
    assert!(
        one_app.locks_out(&[]).is_none(),
        "one application is not the admin API"
    );
}

#[test]
fn what_if_explains_every_condition_of_every_policy() {
    let mut p = policy(mfa());
    p.conditions.locations = Some(Selection {
        include: vec![LocationRef::Any],
        exclude: vec![LocationRef::Trusted],
    });
    p.conditions.client_types = Some(vec![ClientType::Native]);
    let compiled = Compiled::build(vec![p], &[office()], &AccessPolicySettings::default());
    let why = &compiled.explain(&request())[0];
    assert!(!why.applies);
    let conditions: Vec<_> = why
        .checks
        .iter()
        .map(|c| (c.condition, c.applies))
        .collect();
    assert_eq!(
        conditions,
        vec![
            (Condition::Users, true),
            (Condition::Applications, true),
            (Condition::Locations, false),
            (Condition::ClientTypes, false),
        ]
    );
    assert!(
        why.checks[2].why.contains("at office"),
        "{}",
        why.checks[2].why
    );
    assert!(
        why.checks[2].why.contains("excludes"),
        "{}",
        why.checks[2].why
    );

    let mut unknown = request();
    unknown.country = None;
    unknown.geo_known = false;
    let why = &compiled.explain(&unknown)[0];
    assert!(
        why.checks[2].why.contains("no GeoIP database"),
        "{}",
        why.checks[2].why
    );
}

#[test]
fn policies_that_cannot_work_are_refused_with_the_field_named() {
    let mut empty = policy(mfa());
    empty.include = Principals::default();
    assert_eq!(empty.validate().unwrap_err().field, "include");
    let mut workload_mfa = policy(mfa());
    workload_mfa.include = Principals {
        all_service_principals: true,
        ..Default::default()
    };
    assert_eq!(workload_mfa.validate().unwrap_err().field, "grant");
    let mut both = policy(Grant::Block);
    both.include.all_service_principals = true;
    assert_eq!(both.validate().unwrap_err().field, "include");
    let mut zone = policy(mfa());
    zone.conditions.times = Some(Selection {
        include: vec![TimeWindow {
            time_zone: "Mars/Olympus".into(),
            days: vec![],
            from: "00:00".into(),
            until: "00:00".into(),
        }],
        exclude: vec![],
    });
    assert!(
        zone.validate()
            .unwrap_err()
            .message
            .contains("not a time zone")
    );
    let no_controls = policy(Grant::Require {
        operator: Operator::Any,
        controls: vec![],
    });
    assert_eq!(no_controls.validate().unwrap_err().field, "grant.controls");
    assert!(policy(mfa()).validate().is_ok());
    // No controls but session controls: a policy that only bounds sessions and tokens, for
    // people or for workloads.
    let mut session_only = no_controls.clone();
    session_only.session.max_token_lifetime_minutes = Some(5);
    assert!(session_only.validate().is_ok());
    session_only.include = Principals {
        all_service_principals: true,
        ..Default::default()
    };
    assert!(session_only.validate().is_ok());
}

#[test]
fn a_session_only_policy_allows_and_bounds() {
    let mut bounded = policy(Grant::Require {
        operator: Operator::Any,
        controls: vec![],
    });
    bounded.session.sign_in_frequency_minutes = Some(15);
    let compiled = Compiled::build(vec![bounded], &[], &AccessPolicySettings::default());
    let evaluation = compiled.evaluate(&request(), &Proofs::default());
    assert_eq!(evaluation.decision, Decision::Allow);
    assert_eq!(evaluation.results[0].outcome, Outcome::Success);
    assert_eq!(evaluation.session.sign_in_frequency_minutes, Some(15));
}

#[test]
fn documents_round_trip_and_name_their_mistakes() {
    let text = r#"{"id":"0190d6a0-0000-7000-8000-000000000001","name":"Block elsewhere","state":"enabled",
        "include":{"all_users":true},"applications":{"include":["all"]},
        "conditions":{"locations":{"include":["any"],"exclude":["trusted"]}},
        "grant":{"kind":"require","operator":"any","controls":["mfa","compliant_device"]}}"#;
    let policy: AccessPolicy = serde_json::from_str(text).unwrap();
    let again: AccessPolicy =
        serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
    assert_eq!(policy, again);
    let wrong = text.replace("\"any\"]", "\"anywhere\"]");
    let error = serde_json::from_str::<AccessPolicy>(&wrong)
        .unwrap_err()
        .to_string();
    assert!(error.contains("write \"any\", \"trusted\""), "{error}");
    assert!(Country::parse("nz").is_some_and(|c| c.as_str() == "NZ"));
    assert!(Country::parse("NZL").is_none() && Country::parse("1Z").is_none());
}

#[test]
fn every_template_makes_a_valid_report_only_policy() {
    for template in TEMPLATES {
        let location = template.needs_location.then(NamedLocationId::generate);
        let policy = instantiate(template.name, location).unwrap();
        policy.validate().unwrap();
        assert_eq!(policy.state, PolicyState::ReportOnly);
        if template.needs_location {
            assert!(instantiate(template.name, None).is_err());
        }
    }
    assert!(instantiate("everything", None).is_err());
}

#[test]
fn only_a_user_risk_condition_makes_token_requests_look_the_risk_up() {
    let settings = AccessPolicySettings::default();
    let mut risky = policy(mfa());
    risky.conditions.sign_in_risk = Some(vec![RiskLevel::High]);
    assert!(!Compiled::build(vec![risky.clone()], &[], &settings).uses_user_risk());
    risky.conditions.user_risk = Some(vec![RiskLevel::High]);
    assert!(Compiled::build(vec![policy(mfa()), risky], &[], &settings).uses_user_risk());
    assert!(!Compiled::default().uses_user_risk());
}

#[test]
fn session_controls_bound_sessions_and_tokens() {
    let controls = SessionControls {
        sign_in_frequency_minutes: Some(60),
        max_token_lifetime_minutes: Some(5),
        persistent_browser: Some(true),
    };
    let base = crate::session::SessionTimeouts::default();
    let bounded = controls.timeouts(base);
    assert_eq!(bounded.absolute, time::Duration::minutes(60));
    assert_eq!(
        bounded.idle, base.idle,
        "30 minutes idle is already shorter"
    );
    assert_eq!(SessionControls::default().timeouts(base), base);
    let signed_in = at("2026-12-02T10:00:00Z");
    assert!(!controls.sign_in_too_old(signed_in, signed_in + time::Duration::minutes(60)));
    assert!(controls.sign_in_too_old(signed_in, signed_in + time::Duration::minutes(61)));
    assert!(
        !SessionControls::default()
            .sign_in_too_old(signed_in, signed_in + time::Duration::days(400))
    );
    assert_eq!(controls.token_seconds(3600), 300);
    assert_eq!(
        controls.token_seconds(60),
        60,
        "never longer than the client's own"
    );
    assert_eq!(SessionControls::default().token_seconds(3600), 3600);
    assert!(controls.keeps_browser_session());
    assert!(!SessionControls::default().keeps_browser_session());
}
