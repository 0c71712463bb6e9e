//! Evaluating a tenant's compiled policies against one request.

use serde::Serialize;

use super::locations::{LocationIndex, LocationSet};
use super::{
    AccessPolicy, AccessPolicySettings, ClientType, Control, Grant, LocationRef, NamedLocation,
    Operator, PolicyState, Principals, Proofs, Request, RiskLevel, SessionControls, TimeWindow,
    Weekday, Who,
};
use crate::ids::{AccessPolicyId, UserId};

/// A time window ready to be checked: the zone looked up, the times in minutes of the day.
#[derive(Debug, Clone)]
pub(super) struct CompiledWindow {
    zone: jiff::tz::TimeZone,
    /// One bit per day, Monday first; all set when the window named no day.
    days: u8,
    from: u16,
    until: u16,
}

fn minutes(field: &str, text: &str) -> Result<u16, String> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u16>().ok()?, m.parse::<u16>().ok()?);
        (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| format!("{field}: {text:?} is not a time of day such as 07:30"))
}

fn day_bit(day: jiff::civil::Weekday) -> u8 {
    1 << (day.to_monday_zero_offset() as u8)
}

impl CompiledWindow {
    pub(super) fn compile(window: &TimeWindow) -> Result<Self, String> {
        let zone = jiff::tz::TimeZone::get(&window.time_zone).map_err(|_| {
            format!(
                "{:?} is not a time zone: write an IANA name such as Europe/Berlin or UTC",
                window.time_zone
            )
        })?;
        let days = if window.days.is_empty() {
            0x7f
        } else {
            window.days.iter().fold(0, |bits, day| {
                bits | 1
                    << match day {
                        Weekday::Monday => 0,
                        Weekday::Tuesday => 1,
                        Weekday::Wednesday => 2,
                        Weekday::Thursday => 3,
                        Weekday::Friday => 4,
                        Weekday::Saturday => 5,
                        Weekday::Sunday => 6,
                    }
            })
        };
        Ok(Self {
            zone,
            days,
            from: minutes("from", &window.from)?,
            until: minutes("until", &window.until)?,
        })
    }

    fn contains(&self, at: time::OffsetDateTime) -> bool {
        let Ok(instant) = jiff::Timestamp::from_second(at.unix_timestamp()) else {
            return false;
        };
        let local = self.zone.to_datetime(instant);
        let minute = u16::from(local.hour() as u8) * 60 + u16::from(local.minute() as u8);
        let today = self.days & day_bit(local.weekday()) != 0;
        let yesterday = self.days & day_bit(local.weekday().previous()) != 0;
        match self.from.cmp(&self.until) {
            std::cmp::Ordering::Less => today && (self.from..self.until).contains(&minute),
            std::cmp::Ordering::Equal => today,
            // Past midnight: the evening of a listed day, or the morning after one.
            std::cmp::Ordering::Greater => {
                (today && minute >= self.from) || (yesterday && minute < self.until)
            }
        }
    }
}

/// A location reference resolved against the tenant's named locations.
#[derive(Debug, Clone, Copy)]
enum Place {
    Any,
    Trusted,
    Named(u32),
    /// A location that no longer exists: it matches nothing.
    Missing,
}

#[derive(Debug)]
struct CompiledPolicy {
    policy: AccessPolicy,
    locations: Option<(Vec<Place>, Vec<Place>)>,
    times: Option<(Vec<CompiledWindow>, Vec<CompiledWindow>)>,
}

/// A tenant's policies and named locations, ready to evaluate requests against.
#[derive(Debug, Default)]
pub struct Compiled {
    policies: Vec<CompiledPolicy>,
    locations: LocationIndex,
    emergency: Vec<UserId>,
    uses_user_risk: bool,
    terms_version: Option<String>,
}

/// The result of one policy for one request, as the sign-in log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It applied and what it demands was satisfied.
    Success,
    /// It applied and blocked the request, or the request ended without satisfying it.
    Failure,
    NotApplied,
    /// It applied and demands more than has been proved so far.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyResult {
    pub policy: AccessPolicyId,
    pub state: PolicyState,
    pub outcome: Outcome,
    /// The controls still to satisfy, when interrupted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<Control>,
}

/// One enforced policy's demand that is not yet satisfied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Requirement {
    pub policy: AccessPolicyId,
    pub operator: Operator,
    pub controls: Vec<Control>,
}

/// What the enforced policies decide together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    Allow,
    /// The first enforced policy that blocks.
    Block {
        policy: AccessPolicyId,
    },
    /// Every enforced demand not yet satisfied; all must be before the request may go on.
    Require {
        requirements: Vec<Requirement>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Evaluation {
    pub decision: Decision,
    /// The strictest session controls of the enforced policies that applied.
    pub session: SessionControls,
    /// Every policy's result, in the order of the policies.
    pub results: Vec<PolicyResult>,
}

impl Evaluation {
    /// The results once the request ends refused: what was still demanded failed.
    pub fn refused(mut self) -> Self {
        for result in &mut self.results {
            if result.outcome == Outcome::Interrupted {
                result.outcome = Outcome::Failure;
            }
        }
        self
    }
}

/// What a what-if check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    State,
    Users,
    EmergencyAccess,
    Applications,
    Locations,
    Platforms,
    DeviceStates,
    ClientTypes,
    SignInRisk,
    UserRisk,
    Times,
}

/// One condition of one policy, checked against the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Check {
    pub condition: Condition,
    /// Whether this condition lets the policy apply.
    pub applies: bool,
    pub why: String,
}

/// Why one policy applied to a request or not, condition by condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub policy: AccessPolicyId,
    pub name: String,
    pub state: PolicyState,
    pub applies: bool,
    pub checks: Vec<Check>,
}

/// Where the checks of one policy go: nowhere on the hot path, into an explanation for a
/// what-if question. `EXPLAIN` also keeps checking after the first condition that fails, so
/// the answer covers every condition.
trait Notes {
    const EXPLAIN: bool;
    fn note(&mut self, condition: Condition, applies: bool, why: impl FnOnce() -> String);
}

struct Quiet;

impl Notes for Quiet {
    const EXPLAIN: bool = false;
    #[inline(always)]
    fn note(&mut self, _: Condition, _: bool, _: impl FnOnce() -> String) {}
}

impl Notes for Vec<Check> {
    const EXPLAIN: bool = true;
    fn note(&mut self, condition: Condition, applies: bool, why: impl FnOnce() -> String) {
        self.push(Check {
            condition,
            applies,
            why: why(),
        });
    }
}

fn list<T: std::fmt::Debug>(items: &[T]) -> String {
    serde_json::to_string(
        &items
            .iter()
            .map(|i| format!("{i:?}").to_lowercase())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default()
}

impl Compiled {
    /// Compiles a tenant's policies and named locations. Disabled policies are kept (the
    /// what-if answer lists them) but never evaluated.
    pub fn build(
        policies: Vec<AccessPolicy>,
        locations: &[NamedLocation],
        settings: &AccessPolicySettings,
    ) -> Self {
        let index = LocationIndex::build(locations);
        let place = |l: &LocationRef| match l {
            LocationRef::Any => Place::Any,
            LocationRef::Trusted => Place::Trusted,
            LocationRef::Named(id) => index.position(*id).map_or(Place::Missing, Place::Named),
        };
        let windows = |w: &[TimeWindow]| -> Vec<CompiledWindow> {
            // Saved policies were validated; a zone that disappeared from the database
            // matches nothing rather than everything.
            w.iter()
                .filter_map(|w| CompiledWindow::compile(w).ok())
                .collect()
        };
        let policies: Vec<CompiledPolicy> = policies
            .into_iter()
            .map(|policy| CompiledPolicy {
                locations: policy.conditions.locations.as_ref().map(|s| {
                    (
                        s.include.iter().map(place).collect(),
                        s.exclude.iter().map(place).collect(),
                    )
                }),
                times: policy
                    .conditions
                    .times
                    .as_ref()
                    .map(|s| (windows(&s.include), windows(&s.exclude))),
                policy,
            })
            .collect();
        let uses_user_risk = policies
            .iter()
            .any(|p| p.policy.conditions.user_risk.is_some());
        Self {
            policies,
            locations: index,
            emergency: settings.emergency_accounts.clone(),
            uses_user_risk,
            terms_version: settings.terms_version().map(str::to_owned),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Whether any policy has a user-risk condition: only then does a token request, which
    /// must stay fast, need to look the user's risk up.
    pub fn uses_user_risk(&self) -> bool {
        self.uses_user_risk
    }

    /// The version of the tenant's terms of use a `terms_of_use` control asks for.
    pub fn terms_version(&self) -> Option<&str> {
        self.terms_version.as_deref()
    }

    pub fn policy(&self, id: AccessPolicyId) -> Option<&AccessPolicy> {
        self.policies.iter().map(|p| &p.policy).find(|p| p.id == id)
    }

    pub fn is_emergency_account(&self, user: UserId) -> bool {
        self.emergency.contains(&user)
    }

    /// Every enabled and report-only policy's result for `request`, given what it has proved,
    /// and what the enabled ones decide together.
    pub fn evaluate(&self, request: &Request, proofs: &Proofs) -> Evaluation {
        let at = self.locations.locate(request.address, request.country);
        let mut decision = Decision::Allow;
        let mut requirements = Vec::new();
        let mut session = SessionControls::default();
        let mut results = Vec::with_capacity(self.policies.len());
        for compiled in &self.policies {
            let policy = &compiled.policy;
            if policy.state == PolicyState::Disabled {
                continue;
            }
            let enforced = policy.state == PolicyState::Enabled;
            let outcome;
            let mut unmet = Vec::new();
            if !self.applies(compiled, request, &at, &mut Quiet) {
                outcome = Outcome::NotApplied;
            } else {
                match &policy.grant {
                    Grant::Block => {
                        outcome = Outcome::Failure;
                        if enforced && !matches!(decision, Decision::Block { .. }) {
                            decision = Decision::Block { policy: policy.id };
                        }
                    }
                    Grant::Require { operator, controls } => {
                        let satisfied = match operator {
                            Operator::All => controls.iter().all(|c| c.satisfied_by(proofs)),
                            // No controls: the policy only sets session controls.
                            Operator::Any => {
                                controls.is_empty()
                                    || controls.iter().any(|c| c.satisfied_by(proofs))
                            }
                        };
                        if satisfied {
                            outcome = Outcome::Success;
                        } else {
                            outcome = Outcome::Interrupted;
                            unmet = controls
                                .iter()
                                .copied()
                                .filter(|c| !c.satisfied_by(proofs))
                                .collect();
                            if enforced {
                                requirements.push(Requirement {
                                    policy: policy.id,
                                    operator: *operator,
                                    controls: unmet.clone(),
                                });
                            }
                        }
                    }
                }
                if enforced {
                    session = session.strictest(policy.session);
                }
            }
            results.push(PolicyResult {
                policy: policy.id,
                state: policy.state,
                outcome,
                unmet,
            });
        }
        if decision == Decision::Allow && !requirements.is_empty() {
            decision = Decision::Require { requirements };
        }
        Evaluation {
            decision,
            session,
            results,
        }
    }

    /// Why each policy applies to `request` or not, condition by condition.
    pub fn explain(&self, request: &Request) -> Vec<Explanation> {
        let at = self.locations.locate(request.address, request.country);
        self.policies
            .iter()
            .map(|compiled| {
                let mut checks = Vec::new();
                let state = compiled.policy.state;
                if state == PolicyState::Disabled {
                    checks.note(Condition::State, false, || "the policy is disabled".into());
                }
                let applies = self.applies(compiled, request, &at, &mut checks)
                    && state != PolicyState::Disabled;
                Explanation {
                    policy: compiled.policy.id,
                    name: compiled.policy.name.clone(),
                    state,
                    applies,
                    checks,
                }
            })
            .collect()
    }

    fn applies<N: Notes>(
        &self,
        compiled: &CompiledPolicy,
        request: &Request,
        at: &LocationSet,
        notes: &mut N,
    ) -> bool {
        let policy = &compiled.policy;
        let conditions = &policy.conditions;
        let mut applies = true;
        // Notes the check, and stops at the first that fails unless explaining.
        macro_rules! step {
            ($condition:expr, $applies:expr, $why:expr) => {{
                let ok: bool = $applies;
                notes.note($condition, ok, $why);
                applies &= ok;
                if !applies && !N::EXPLAIN {
                    return false;
                }
            }};
        }
        let included = covers(&policy.include, &request.who);
        let excluded = covers(&policy.exclude, &request.who);
        step!(
            Condition::Users,
            included && !excluded,
            || match (included, excluded) {
                (true, false) => "included".into(),
                (true, true) => "included, but also excluded; exclusion wins".into(),
                (false, _) => "not among those the policy includes".into(),
            }
        );
        if let Who::User { id, .. } = &request.who
            && self.emergency.contains(id)
        {
            let named = policy.include.users.contains(id);
            step!(Condition::EmergencyAccess, named, || if named {
                "an emergency access account this policy names".into()
            } else {
                "an emergency access account, left out of every policy that does not name it".into()
            });
        }
        let app = policy
            .applications
            .include
            .iter()
            .any(|a| a.matches(request.application))
            && !policy
                .applications
                .exclude
                .iter()
                .any(|a| a.matches(request.application));
        step!(Condition::Applications, app, || format!(
            "the application is {}included",
            if app { "" } else { "not " }
        ));
        if let Some((include, exclude)) = &compiled.locations {
            let place_holds = |place: &Place| match place {
                Place::Any => true,
                Place::Trusted => self.locations.any_trusted(at),
                Place::Named(i) => at.contains(*i),
                Place::Missing => false,
            };
            let inside = include.is_empty() || include.iter().any(place_holds);
            let outside = exclude.iter().any(place_holds);
            step!(Condition::Locations, inside && !outside, || self
                .describe_location(request, at, inside, outside));
        }
        if let Some(platforms) = &conditions.platforms {
            let ok = (platforms.include.is_empty()
                || platforms.include.contains(&request.platform))
                && !platforms.exclude.contains(&request.platform);
            step!(Condition::Platforms, ok, || format!(
                "the platform is {:?}; the policy includes {} and excludes {}",
                request.platform,
                list(&platforms.include),
                list(&platforms.exclude)
            )
            .to_lowercase());
        }
        if let Some(states) = &conditions.device_states {
            let ok = states.contains(&request.device);
            step!(Condition::DeviceStates, ok, || format!(
                "the device is {}; the policy is for {}",
                format!("{:?}", request.device).to_lowercase(),
                list(states)
            ));
        }
        if let Some(types) = &conditions.client_types {
            let ok = types.contains(&request.client_type);
            step!(Condition::ClientTypes, ok, || format!(
                "the client is {}; the policy is for {}",
                client_name(request.client_type),
                list(types)
            ));
        }
        if let Some(levels) = &conditions.sign_in_risk {
            let ok = levels.contains(&request.sign_in_risk);
            step!(Condition::SignInRisk, ok, || risk_why(
                "sign-in",
                request.sign_in_risk,
                levels
            ));
        }
        if let Some(levels) = &conditions.user_risk {
            let ok = levels.contains(&request.user_risk);
            step!(Condition::UserRisk, ok, || risk_why(
                "user",
                request.user_risk,
                levels
            ));
        }
        if let Some((include, exclude)) = &compiled.times {
            let inside = include.is_empty() || include.iter().any(|w| w.contains(request.at));
            let outside = exclude.iter().any(|w| w.contains(request.at));
            step!(Condition::Times, inside && !outside, || format!(
                "at {} the request is {} the policy's time windows",
                request.at,
                if inside && !outside {
                    "within"
                } else {
                    "outside"
                }
            ));
        }
        applies
    }

    fn describe_location(
        &self,
        request: &Request,
        at: &LocationSet,
        inside: bool,
        outside: bool,
    ) -> String {
        let address = request
            .address
            .map_or_else(|| "an unknown address".to_owned(), |a| a.to_string());
        let country = match (request.country, request.geo_known) {
            (Some(country), _) => format!("in {country}"),
            (None, true) => "in an unknown country (the GeoIP database does not list it)".into(),
            (None, false) => {
                "in an unknown country (no GeoIP database is configured, so conditions on countries never match)".into()
            }
        };
        let named: Vec<&str> = (0..self.locations.len() as u32)
            .filter(|i| at.contains(*i))
            .map(|i| self.locations.name(i))
            .collect();
        let places = if named.is_empty() {
            "at none of the named locations".to_owned()
        } else {
            format!("at {}", named.join(", "))
        };
        let verdict = match (inside, outside) {
            (true, false) => "which the policy includes",
            (true, true) => "which the policy excludes",
            (false, _) => "which the policy does not include",
        };
        format!("{address}, {country}, is {places}, {verdict}")
    }
}

fn client_name(client: ClientType) -> String {
    format!("{client:?}").to_lowercase()
}

fn risk_why(what: &str, level: RiskLevel, levels: &[RiskLevel]) -> String {
    format!(
        "the {what} risk is {}; the policy is for {}",
        level.as_str(),
        list(levels)
    )
}

/// Whether `principals` names the requester.
fn covers(principals: &Principals, who: &Who) -> bool {
    match who {
        Who::User {
            id,
            groups,
            administrator,
            guest,
        } => {
            principals.all_users
                || (principals.administrators && *administrator)
                || (principals.guests && *guest)
                || principals.users.contains(id)
                || principals.groups.iter().any(|g| groups.contains(g))
        }
        Who::ServicePrincipal(id) => {
            principals.all_service_principals || principals.service_principals.contains(id)
        }
    }
}
