//! Conditional access at scale: a tenant's worth of policies and named locations, made the same
//! way every run, evaluated in process (`bench conditional`) and enforced over HTTP
//! (`bench sign-in --policies`).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use portcullis_core::conditional::{
    AccessPolicy, AccessPolicySettings, Application, ApplicationRef, ClientType, Compiled,
    Conditions, Control, Country, DeviceState, Grant, LocationRef, NamedLocation, Operator,
    Platform, PolicyState, Principals, Proofs, Request, RiskLevel, Selection, SessionControls,
    TimeWindow, Weekday, Who,
};
use portcullis_core::session::Strength;
use portcullis_core::{AccessPolicyId, GroupId, NamedLocationId, UserId};

/// A small deterministic generator (xorshift64*): the same tenant every run.
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_u64_pair(self.next(), self.next())
    }
}

const COUNTRIES: [&str; 12] = [
    "DE", "FR", "NZ", "AU", "US", "CA", "JP", "BR", "IN", "ZA", "GB", "SE",
];

/// `count` named locations: each a few networks in 10.0.0.0/8 and 2001:db8::/32, every fifth a
/// set of countries instead, every tenth trusted.
pub fn locations(count: usize, dice: &mut Dice) -> Vec<NamedLocation> {
    (0..count)
        .map(|i| {
            let by_country = i % 5 == 4;
            let networks = (0..3)
                .map(|_| {
                    let a = dice.next();
                    let prefix = [16u8, 24, 24, 28][dice.below(4)];
                    let network =
                        Ipv4Addr::new(10, (a >> 8) as u8, (a >> 16) as u8, (a >> 24) as u8);
                    format!("{network}/{prefix}")
                })
                .chain(std::iter::once(format!("2001:db8:{i:x}::/48")))
                .filter_map(|network| network.parse().ok())
                .collect();
            NamedLocation {
                id: NamedLocationId::from_uuid(dice.uuid()),
                name: format!("location-{i}"),
                trusted: !by_country && i % 10 == 0,
                ranges: if by_country { vec![] } else { networks },
                countries: if by_country {
                    (0..3)
                        .filter_map(|_| Country::parse(COUNTRIES[dice.below(COUNTRIES.len())]))
                        .collect()
                } else {
                    vec![]
                },
                include_unknown_countries: false,
            }
        })
        .collect()
}

fn mfa() -> Grant {
    Grant::Require {
        operator: Operator::All,
        controls: vec![Control::Mfa],
    }
}

/// `count` enabled policies over `locations`, of the shapes tenants write. None of them
/// applies to a browser sign-in from 127.0.0.1 at no risk, so a sign-in benchmark measures the
/// evaluation, not a second factor; most are checked down to their last condition first.
pub fn policies(count: usize, locations: &[NamedLocation], dice: &mut Dice) -> Vec<AccessPolicy> {
    let everyone = Principals {
        all_users: true,
        ..Principals::default()
    };
    (0..count)
        .map(|i| {
            let mut location = || LocationRef::Named(locations[dice.below(locations.len())].id);
            let (include, conditions, grant) = match i % 6 {
                0 => (
                    everyone.clone(),
                    Conditions {
                        locations: Some(Selection {
                            include: vec![location(), location()],
                            exclude: vec![],
                        }),
                        ..Conditions::default()
                    },
                    Grant::Block,
                ),
                1 => (
                    Principals {
                        users: (0..20).map(|_| UserId::from_uuid(dice.uuid())).collect(),
                        ..Principals::default()
                    },
                    Conditions::default(),
                    Grant::Block,
                ),
                2 => (
                    everyone.clone(),
                    Conditions {
                        locations: Some(Selection {
                            include: vec![LocationRef::Any],
                            exclude: vec![LocationRef::Trusted, location()],
                        }),
                        client_types: Some(vec![ClientType::Browser, ClientType::Native]),
                        sign_in_risk: Some(vec![RiskLevel::Medium, RiskLevel::High]),
                        ..Conditions::default()
                    },
                    mfa(),
                ),
                3 => (
                    Principals {
                        groups: (0..5).map(|_| GroupId::from_uuid(dice.uuid())).collect(),
                        ..Principals::default()
                    },
                    Conditions::default(),
                    mfa(),
                ),
                4 => (
                    everyone.clone(),
                    Conditions {
                        platforms: Some(Selection {
                            include: vec![Platform::Android, Platform::Ios],
                            exclude: vec![],
                        }),
                        ..Conditions::default()
                    },
                    mfa(),
                ),
                _ => (
                    everyone.clone(),
                    Conditions {
                        user_risk: Some(vec![RiskLevel::High]),
                        times: Some(Selection {
                            include: vec![TimeWindow {
                                time_zone: "Europe/Berlin".into(),
                                days: vec![Weekday::Saturday, Weekday::Sunday],
                                from: "00:00".into(),
                                until: "00:00".into(),
                            }],
                            exclude: vec![],
                        }),
                        ..Conditions::default()
                    },
                    Grant::Require {
                        operator: Operator::All,
                        controls: vec![Control::PasswordChange],
                    },
                ),
            };
            AccessPolicy {
                id: AccessPolicyId::from_uuid(dice.uuid()),
                name: format!("policy-{i}"),
                state: PolicyState::Enabled,
                include,
                exclude: Principals::default(),
                applications: Selection {
                    include: vec![ApplicationRef::All],
                    exclude: vec![],
                },
                conditions,
                grant,
                session: SessionControls::default(),
            }
        })
        .collect()
}

#[derive(clap::Args)]
pub struct ConditionalBench {
    /// Enabled policies in the tenant.
    #[arg(long, default_value_t = 200)]
    policies: usize,
    /// Named locations in the tenant.
    #[arg(long, default_value_t = 1_000)]
    locations: usize,
    /// Requests evaluated, each timed on its own.
    #[arg(long, default_value_t = 200_000)]
    requests: usize,
}

fn request(dice: &mut Dice) -> Request {
    let a = dice.next();
    let address = match dice.below(3) {
        0 => IpAddr::V4(Ipv4Addr::new(
            10,
            (a >> 8) as u8,
            (a >> 16) as u8,
            (a >> 24) as u8,
        )),
        1 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, a as u8)),
        _ => format!("2001:db8:{:x}::{:x}", a % 1500, a >> 48)
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    let platforms = [
        Platform::Windows,
        Platform::Macos,
        Platform::Linux,
        Platform::Android,
    ];
    Request {
        who: Who::User {
            id: UserId::from_uuid(dice.uuid()),
            groups: (0..dice.below(8))
                .map(|_| GroupId::from_uuid(dice.uuid()))
                .collect(),
            administrator: dice.below(10) == 0,
            guest: false,
        },
        application: Application::Account,
        address: Some(address),
        country: Country::parse(COUNTRIES[dice.below(COUNTRIES.len())]),
        geo_known: true,
        platform: platforms[dice.below(platforms.len())],
        device: DeviceState::Unregistered,
        client_type: ClientType::Browser,
        sign_in_risk: [RiskLevel::None, RiskLevel::Low][dice.below(2)],
        user_risk: RiskLevel::None,
        at: time::OffsetDateTime::now_utc(),
    }
}

/// Evaluates generated requests against generated policies in process: per-evaluation p50,
/// p99 and p99.9, and their share of one password verification (the floor of a sign-in).
pub fn conditional(bench: &ConditionalBench, one_verification: f64) -> anyhow::Result<()> {
    if bench.requests == 0 || bench.locations == 0 {
        anyhow::bail!("--requests and --locations must be at least 1");
    }
    let mut dice = Dice::new(0x5eed);
    let locations = locations(bench.locations, &mut dice);
    let policies = policies(bench.policies, &locations, &mut dice);
    let started = Instant::now();
    let compiled = Compiled::build(policies, &locations, &AccessPolicySettings::default());
    let build = started.elapsed();
    let requests: Vec<Request> = (0..bench.requests).map(|_| request(&mut dice)).collect();
    let proofs = Proofs {
        strength: Some(Strength::Password),
        ..Proofs::default()
    };
    // Warm the caches and the time zone lookups first.
    for request in requests.iter().take(1_000) {
        black_box(compiled.evaluate(request, &proofs));
    }
    let mut times = Vec::with_capacity(requests.len());
    let mut applied = 0usize;
    for request in &requests {
        let at = Instant::now();
        let evaluation = black_box(compiled.evaluate(black_box(request), &proofs));
        times.push(at.elapsed().as_nanos() as f64 / 1_000.0);
        applied += evaluation
            .results
            .iter()
            .filter(|r| r.outcome != portcullis_core::conditional::Outcome::NotApplied)
            .count();
    }
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "conditional   {} policies, {} named locations: compiled in {:.2} ms; {} requests, {:.1} policies applied per request",
        bench.policies,
        bench.locations,
        build.as_secs_f64() * 1000.0,
        requests.len(),
        applied as f64 / requests.len() as f64
    );
    println!(
        "conditional   evaluation p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs; p50 is {:.3}% of one password verification ({:.1} ms)",
        at(0.50),
        at(0.99),
        at(0.999),
        at(0.50) / (one_verification * 1e6) * 100.0,
        one_verification * 1000.0
    );
    Ok(())
}
