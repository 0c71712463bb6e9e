//! Conditional access: which sign-ins and token requests a tenant's policies let through, on
//! what terms, and why.
//!
//! A policy names who and which applications it is for, the conditions under which it applies
//! (where the request comes from, the device, the client, the risk, the time) and what it then
//! demands: a block, or controls to satisfy (a second factor, a phishing-resistant method, a
//! compliant device, a password change). Every enabled policy that applies must be satisfied
//! and a block wins; a report-only policy is evaluated and recorded but never enforced. The
//! evaluation is a pure function of the compiled policies and the request's facts, and can say
//! for every policy, condition by condition, why it applied or not (the what-if answer).

mod evaluate;
mod locations;
mod templates;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ValidationError;
use crate::ids::{AccessPolicyId, GroupId, NamedLocationId, ServicePrincipalId, UserId};
use crate::session::{SessionTimeouts, Strength};

pub use evaluate::{
    Check, Compiled, Condition, Decision, Evaluation, Explanation, Outcome, PolicyResult,
    Requirement,
};
pub use locations::LocationIndex;
pub use templates::{TEMPLATES, Template, instantiate};

/// A two-letter ISO 3166-1 country code, upper case (`DE`, `NZ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "NZ"))]
#[serde(try_from = "String", into = "String")]
pub struct Country([u8; 2]);

impl Country {
    pub fn parse(text: &str) -> Option<Self> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Self([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII letters by construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl TryFrom<String> for Country {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text).ok_or_else(|| {
            format!("{text:?} is not a two-letter ISO 3166-1 country code such as DE or NZ")
        })
    }
}

impl From<Country> for String {
    fn from(country: Country) -> Self {
        country.as_str().to_owned()
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A named set of networks and countries: the office, the VPN, the countries the company works
/// in. A request is at the location when its address is in one of the networks, or the country
/// of its address is one of the countries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NamedLocation {
    /// Set by the server: a new location gets a new id, and a replaced one keeps its own.
    #[serde(default = "NamedLocationId::generate")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub id: NamedLocationId,
    pub name: String,
    /// Whether requests from here count as from a trusted network (`"trusted"` in a policy's
    /// locations).
    #[serde(default)]
    pub trusted: bool,
    /// Networks in CIDR notation, IPv4 or IPv6.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["192.0.2.0/24"])))]
    pub ranges: Vec<ipnet::IpNet>,
    #[serde(default)]
    pub countries: Vec<Country>,
    /// Whether an address whose country cannot be told (no GeoIP database, an unlisted range)
    /// is at this location.
    #[serde(default)]
    pub include_unknown_countries: bool,
}

/// At most this many networks and countries in one named location.
pub const MAX_LOCATION_ENTRIES: usize = 2_000;

impl NamedLocation {
    pub fn validate(&self) -> Result<(), ValidationError> {
        crate::names::parse_name("name", &self.name)?;
        if self.ranges.is_empty() && self.countries.is_empty() && !self.include_unknown_countries {
            return Err(ValidationError::new(
                "ranges",
                "a named location needs at least one network or country",
            ));
        }
        if self.ranges.len() + self.countries.len() > MAX_LOCATION_ENTRIES {
            return Err(ValidationError::new(
                "ranges",
                format!("at most {MAX_LOCATION_ENTRIES} networks and countries in one location"),
            ));
        }
        if self.trusted && !self.countries.is_empty() {
            // A country is no network anyone controls: trust is for ranges one does.
            return Err(ValidationError::new(
                "trusted",
                "only a location of networks can be trusted; countries cannot",
            ));
        }
        Ok(())
    }
}

/// Whether a policy is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PolicyState {
    Enabled,
    Disabled,
    /// Evaluated and recorded on every sign-in, never enforced: to see what a policy would do
    /// before turning it on.
    #[default]
    ReportOnly,
}

impl PolicyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::ReportOnly => "report_only",
        }
    }
}

/// A set of principals a policy includes or excludes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Principals {
    pub all_users: bool,
    pub users: Vec<UserId>,
    /// Members of these groups, directly or through nested groups.
    pub groups: Vec<GroupId>,
    /// Everyone who may do any of Portcullis's own actions, by any role.
    pub administrators: bool,
    pub guests: bool,
    pub all_service_principals: bool,
    pub service_principals: Vec<ServicePrincipalId>,
}

impl Principals {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn names_workloads(&self) -> bool {
        self.all_service_principals || !self.service_principals.is_empty()
    }

    fn names_people(&self) -> bool {
        self.all_users
            || self.administrators
            || self.guests
            || !self.users.is_empty()
            || !self.groups.is_empty()
    }
}

/// What a request signs in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Application {
    /// The sign-in and account pages themselves.
    Account,
    /// Portcullis's admin REST API.
    AdminApi,
    /// An OAuth client.
    Client(ServicePrincipalId),
}

/// Include and exclude lists of one condition. An empty `include` means any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Selection<T> {
    #[serde(default = "Vec::new")]
    pub include: Vec<T>,
    #[serde(default = "Vec::new")]
    pub exclude: Vec<T>,
}

/// A location a policy names: any, the trusted named locations, or one named location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationRef {
    Any,
    Trusted,
    Named(NamedLocationId),
}

impl Serialize for LocationRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Any => serializer.serialize_str("any"),
            Self::Trusted => serializer.serialize_str("trusted"),
            Self::Named(id) => serializer.collect_str(id),
        }
    }
}

impl<'de> Deserialize<'de> for LocationRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "any" => Ok(Self::Any),
            "trusted" => Ok(Self::Trusted),
            other => other.parse().map(Self::Named).map_err(|_| {
                serde::de::Error::custom(format!(
                    "{other:?} is not a location: write \"any\", \"trusted\" or a named location's id"
                ))
            }),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LocationRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`any`, `trusted` (every trusted named location) or a named location's id",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LocationRef {}

/// The operating system of the device a request comes from, as its client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Android,
    Ios,
    Windows,
    Macos,
    Linux,
    Other,
}

impl Platform {
    pub const ALL: [Self; 6] = [
        Self::Android,
        Self::Ios,
        Self::Windows,
        Self::Macos,
        Self::Linux,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
            Self::Windows => "windows",
            Self::Macos => "macos",
            Self::Linux => "linux",
            Self::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The platform a browser's or app's `User-Agent` names; `Other` when it names none. A
    /// client can claim any platform, so this serves to include platforms (require more of
    /// them), not to trust one.
    pub fn from_user_agent(agent: &str) -> Self {
        let agent = agent.to_ascii_lowercase();
        if agent.contains("android") {
            Self::Android
        } else if agent.contains("iphone") || agent.contains("ipad") || agent.contains("ios") {
            Self::Ios
        } else if agent.contains("windows") {
            Self::Windows
        } else if agent.contains("mac os") || agent.contains("macintosh") {
            Self::Macos
        } else if agent.contains("linux") || agent.contains("x11") {
            Self::Linux
        } else {
            Self::Other
        }
    }
}

/// How the request's client talks to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    /// A person in a web browser: the sign-in pages, and web applications' code flow.
    Browser,
    /// A mobile or desktop app (a public client: code flow with PKCE, or the device grant).
    Native,
    /// A workload with its own credentials (client credentials, API keys).
    Workload,
    /// A client that says nothing we recognise about itself.
    Other,
}

/// How risky a sign-in or a user is, lowest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    #[default]
    None,
    Low,
    Medium,
    High,
}

impl RiskLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::None, Self::Low, Self::Medium, Self::High]
            .into_iter()
            .find(|l| l.as_str() == text)
    }
}

/// The state of the device a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// No device the tenant knows, or one whose key was not proven.
    Unregistered,
    Registered,
    Compliant,
}

/// Days of the week, for time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// A weekly window in a time zone: on `days`, from `from` until `until` (local wall-clock
/// times, `HH:MM`; a window past midnight, `22:00`–`06:00`, runs into the next day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// An IANA time zone name: `Europe/Berlin`, `Pacific/Auckland`, `UTC`.
    pub time_zone: String,
    /// Every day when empty.
    #[serde(default)]
    pub days: Vec<Weekday>,
    #[serde(default = "midnight")]
    pub from: String,
    #[serde(default = "midnight")]
    pub until: String,
}

fn midnight() -> String {
    "00:00".into()
}

/// When a policy applies. A condition left out (`null`) does not restrict the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    pub locations: Option<Selection<LocationRef>>,
    pub platforms: Option<Selection<Platform>>,
    /// The device states the policy applies to.
    pub device_states: Option<Vec<DeviceState>>,
    pub client_types: Option<Vec<ClientType>>,
    /// The sign-in risk levels the policy applies to.
    pub sign_in_risk: Option<Vec<RiskLevel>>,
    /// The user risk levels the policy applies to.
    pub user_risk: Option<Vec<RiskLevel>>,
    pub times: Option<Selection<TimeWindow>>,
}

/// Something a policy demands before it lets a request through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Two factors: a password and a code, or a passkey.
    Mfa,
    /// A passkey (an authentication strength that phishing cannot get round).
    PhishingResistant,
    CompliantDevice,
    /// A new password, chosen in this sign-in (for a user at risk).
    PasswordChange,
    /// The tenant's current terms of use, accepted by the user.
    TermsOfUse,
}

impl Control {
    pub const ALL: [Control; 5] = [
        Self::Mfa,
        Self::PhishingResistant,
        Self::CompliantDevice,
        Self::PasswordChange,
        Self::TermsOfUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mfa => "mfa",
            Self::PhishingResistant => "phishing_resistant",
            Self::CompliantDevice => "compliant_device",
            Self::PasswordChange => "password_change",
            Self::TermsOfUse => "terms_of_use",
        }
    }

    /// Whether what the request has proved satisfies this control.
    pub fn satisfied_by(self, proofs: &Proofs) -> bool {
        match self {
            Self::Mfa => proofs.strength >= Some(Strength::Mfa),
            Self::PhishingResistant => proofs.strength >= Some(Strength::PhishingResistant),
            Self::CompliantDevice => proofs.compliant_device,
            Self::PasswordChange => proofs.password_changed,
            Self::TermsOfUse => proofs.terms_accepted,
        }
    }
}

/// Whether all or any one of a policy's controls must be satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    #[default]
    All,
    Any,
}

/// What a policy demands of the requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Grant {
    Block,
    Require {
        #[serde(default)]
        operator: Operator,
        controls: Vec<Control>,
    },
}

/// How long what a sign-in proved lasts, once a policy applied to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SessionControls {
    /// Ask for the sign-in again after this many minutes.
    pub sign_in_frequency_minutes: Option<u32>,
    /// Issue access tokens for at most this many minutes.
    pub max_token_lifetime_minutes: Option<u32>,
    /// Whether the browser session may outlive the browser (`false`: ends with it).
    pub persistent_browser: Option<bool>,
}

impl SessionControls {
    /// The strictest of both: the shorter limits, and a browser session that is not kept
    /// when either says so.
    pub fn strictest(self, other: Self) -> Self {
        fn shorter(a: Option<u32>, b: Option<u32>) -> Option<u32> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        Self {
            sign_in_frequency_minutes: shorter(
                self.sign_in_frequency_minutes,
                other.sign_in_frequency_minutes,
            ),
            max_token_lifetime_minutes: shorter(
                self.max_token_lifetime_minutes,
                other.max_token_lifetime_minutes,
            ),
            persistent_browser: match (self.persistent_browser, other.persistent_browser) {
                (Some(a), Some(b)) => Some(a && b),
                (a, b) => a.or(b),
            },
        }
    }

    fn frequency(&self) -> Option<time::Duration> {
        self.sign_in_frequency_minutes
            .map(|m| time::Duration::minutes(i64::from(m)))
    }

    /// A browser session's timeouts under these controls: none longer than the sign-in
    /// frequency, so the session ends when the person must sign in again.
    pub fn timeouts(&self, base: SessionTimeouts) -> SessionTimeouts {
        match self.frequency() {
            Some(frequency) => SessionTimeouts {
                idle: base.idle.min(frequency),
                absolute: base.absolute.min(frequency),
            },
            None => base,
        }
    }

    /// Whether a sign-in made at `authenticated_at` is older at `now` than the sign-in
    /// frequency allows.
    pub fn sign_in_too_old(
        &self,
        authenticated_at: time::OffsetDateTime,
        now: time::OffsetDateTime,
    ) -> bool {
        self.frequency()
            .is_some_and(|frequency| now - authenticated_at > frequency)
    }

    /// How many seconds an access token may live: the client's `configured` lifetime, or the
    /// maximum token lifetime if that is shorter.
    pub fn token_seconds(&self, configured: u32) -> u32 {
        self.max_token_lifetime_minutes
            .map_or(configured, |m| configured.min(m.saturating_mul(60)))
    }

    /// Whether the browser session is to outlive the browser (a cookie with an expiry).
    pub fn keeps_browser_session(&self) -> bool {
        self.persistent_browser == Some(true)
    }
}

/// A conditional access policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessPolicy {
    /// Set by the server: a new policy gets a new id, and a replaced one keeps its own.
    #[serde(default = "AccessPolicyId::generate")]
    #[cfg_attr(feature = "openapi", schema(read_only))]
    pub id: AccessPolicyId,
    pub name: String,
    #[serde(default)]
    pub state: PolicyState,
    pub include: Principals,
    #[serde(default)]
    pub exclude: Principals,
    pub applications: Selection<ApplicationRef>,
    #[serde(default)]
    pub conditions: Conditions,
    pub grant: Grant,
    #[serde(default)]
    pub session: SessionControls,
}

/// An application a policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplicationRef {
    All,
    Only(Application),
}

impl ApplicationRef {
    fn matches(self, application: Application) -> bool {
        match self {
            Self::All => true,
            Self::Only(only) => only == application,
        }
    }
}

impl Serialize for ApplicationRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::Only(Application::Account) => serializer.serialize_str("account"),
            Self::Only(Application::AdminApi) => serializer.serialize_str("admin_api"),
            Self::Only(Application::Client(id)) => serializer.collect_str(id),
        }
    }
}

impl<'de> Deserialize<'de> for ApplicationRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "all" => Ok(Self::All),
            "account" => Ok(Self::Only(Application::Account)),
            "admin_api" => Ok(Self::Only(Application::AdminApi)),
            other => other
                .parse()
                .map(|id| Self::Only(Application::Client(id)))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{other:?} is not an application: write \"all\", \"account\", \"admin_api\" or an OAuth client's id"
                    ))
                }),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ApplicationRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "`all`, `account` (the sign-in and account pages), `admin_api` or an OAuth client's id",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ApplicationRef {}

/// At most this many entries in any one list of a policy.
pub const MAX_POLICY_LIST: usize = 1_000;

impl AccessPolicy {
    /// Whether the policy's grant names the terms of use.
    pub fn asks_for_terms(&self) -> bool {
        matches!(&self.grant, Grant::Require { controls, .. } if controls.contains(&Control::TermsOfUse))
    }
}

impl AccessPolicy {
    /// The rules a policy must keep to be saved, whatever else the tenant holds.
    pub fn validate(&self) -> Result<(), ValidationError> {
        use ValidationError as E;
        crate::names::parse_name("name", &self.name)?;
        if self.include.is_empty() {
            return Err(E::new(
                "include",
                "name whom the policy is for: all_users, users, groups, administrators, guests or service principals",
            ));
        }
        if self.applications.include.is_empty() {
            return Err(E::new(
                "applications.include",
                "name the applications the policy is for, or \"all\"",
            ));
        }
        let lists = [
            ("include.users", self.include.users.len()),
            ("include.groups", self.include.groups.len()),
            (
                "include.service_principals",
                self.include.service_principals.len(),
            ),
            ("exclude.users", self.exclude.users.len()),
            ("exclude.groups", self.exclude.groups.len()),
            (
                "exclude.service_principals",
                self.exclude.service_principals.len(),
            ),
            ("applications.include", self.applications.include.len()),
            ("applications.exclude", self.applications.exclude.len()),
        ];
        if let Some((field, _)) = lists.iter().find(|(_, n)| *n > MAX_POLICY_LIST) {
            return Err(E::new(*field, format!("at most {MAX_POLICY_LIST} entries")));
        }
        // A grant with no controls is how a policy only sets session controls.
        let session_only = self.session != SessionControls::default();
        match &self.grant {
            Grant::Require { controls, .. } if controls.is_empty() && !session_only => {
                return Err(E::new(
                    "grant.controls",
                    "name at least one control, set session controls, or make the grant a block",
                ));
            }
            Grant::Require { controls, .. }
                if !controls.is_empty() && self.include.names_workloads() =>
            {
                // A workload has no second factor or device to show: only a block can apply.
                return Err(E::new(
                    "grant",
                    "a policy for service principals can only block or set session controls; write a separate policy for people",
                ));
            }
            _ => {}
        }
        if self.include.names_workloads() && self.include.names_people() {
            return Err(E::new(
                "include",
                "a policy is for people or for service principals, not both",
            ));
        }
        if let Some(times) = &self.conditions.times {
            for (i, window) in times.include.iter().chain(&times.exclude).enumerate() {
                evaluate::CompiledWindow::compile(window)
                    .map_err(|why| E::new(format!("conditions.times[{i}]"), why))?;
            }
        }
        let sessions = [
            self.session.sign_in_frequency_minutes,
            self.session.max_token_lifetime_minutes,
        ];
        if sessions
            .iter()
            .flatten()
            .any(|m| *m == 0 || *m > 366 * 24 * 60)
        {
            return Err(E::new(
                "session",
                "minutes must be between 1 and a year (527040)",
            ));
        }
        Ok(())
    }

    /// The named locations the policy refers to.
    pub fn locations(&self) -> impl Iterator<Item = NamedLocationId> + '_ {
        self.conditions
            .locations
            .iter()
            .flat_map(|s| s.include.iter().chain(&s.exclude))
            .filter_map(|l| match l {
                LocationRef::Named(id) => Some(*id),
                _ => None,
            })
    }

    /// Why saving this policy could lock every administrator out, emergency access accounts
    /// included, if it could. An enabled block for all users or all administrators, with no
    /// one excluded and every emergency access account among those it names, is refused
    /// whatever its conditions: a condition met by accident (a VPN's exit in another country,
    /// a GeoIP database that moved a range) would leave no one to undo it.
    pub fn locks_out(&self, emergency_accounts: &[UserId]) -> Option<String> {
        let blocks_admins = self.state == PolicyState::Enabled
            && self.grant == Grant::Block
            && (self.include.all_users || self.include.administrators)
            && self
                .applications
                .include
                .iter()
                .any(|a| a.matches(Application::AdminApi) || a.matches(Application::Account))
            && self.exclude.users.is_empty()
            && self.exclude.groups.is_empty();
        let no_way_out = emergency_accounts
            .iter()
            .all(|id| self.include.users.contains(id));
        (blocks_admins && no_way_out).then(|| {
            if emergency_accounts.is_empty() {
                "this enabled block covers every administrator and the tenant has no emergency access account: designate one (conditional access settings), exclude someone, or save it as report_only first".to_owned()
            } else {
                "this enabled block covers every administrator and names every emergency access account: leave at least one emergency account out of it".to_owned()
            }
        })
    }
}

/// An object as stored, with its version for optimistic concurrency (`ETag` / `If-Match`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Versioned<T> {
    #[serde(flatten)]
    pub value: T,
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a request has proved so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Proofs {
    /// How strongly the user proved who they are; `None` for a workload.
    pub strength: Option<Strength>,
    pub compliant_device: bool,
    /// Whether the user chose a new password in this sign-in.
    pub password_changed: bool,
    /// Whether the user has accepted the tenant's current terms of use.
    pub terms_accepted: bool,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    User {
        id: UserId,
        /// Every group the user is in, directly or through nested groups.
        groups: Vec<GroupId>,
        administrator: bool,
        guest: bool,
    },
    ServicePrincipal(ServicePrincipalId),
}

/// The facts of one request that policies are evaluated against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub who: Who,
    pub application: Application,
    pub address: Option<IpAddr>,
    /// The country of `address`, if a GeoIP database told it.
    pub country: Option<Country>,
    /// Whether a GeoIP database is configured at all, so an unknown country can say why.
    pub geo_known: bool,
    pub platform: Platform,
    pub device: DeviceState,
    pub client_type: ClientType,
    pub sign_in_risk: RiskLevel,
    pub user_risk: RiskLevel,
    pub at: OffsetDateTime,
}

/// The tenant-wide settings of conditional access.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct AccessPolicySettings {
    /// Emergency access ("break-glass") accounts: left out of every policy that does not name
    /// them in `include.users`, and every sign-in of theirs is audited as high severity.
    pub emergency_accounts: Vec<UserId>,
    /// The terms a `terms_of_use` control asks people to accept. A new `version` asks everyone
    /// again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_of_use: Option<TermsOfUse>,
}

/// A tenant's terms of use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TermsOfUse {
    /// Names this text: people accept a version (1–64 characters, such as `2026-12`).
    pub version: String,
    /// What people are asked to accept, as plain text (up to 20,000 characters).
    pub text: String,
}

impl AccessPolicySettings {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.emergency_accounts.len() > 10 {
            return Err(ValidationError::new(
                "emergency_accounts",
                "at most 10 emergency access accounts; they are for emergencies",
            ));
        }
        if let Some(terms) = &self.terms_of_use {
            let version = terms.version.trim();
            if version.is_empty()
                || version.chars().count() > 64
                || version.chars().any(char::is_control)
            {
                return Err(ValidationError::new(
                    "terms_of_use.version",
                    "must be 1 to 64 characters, none of them control characters",
                ));
            }
            if terms.text.trim().is_empty() || terms.text.chars().count() > 20_000 {
                return Err(ValidationError::new(
                    "terms_of_use.text",
                    "must be 1 to 20,000 characters",
                ));
            }
        }
        Ok(())
    }

    /// The version people must have accepted, when the tenant has terms.
    pub fn terms_version(&self) -> Option<&str> {
        self.terms_of_use.as_ref().map(|t| t.version.as_str())
    }
}

#[cfg(test)]
mod tests;
