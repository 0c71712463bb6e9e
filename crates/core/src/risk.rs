//! Identity protection: what makes a sign-in or a user risky, decided from what was seen.
//!
//! Two kinds of risk feed the conditional access conditions of the same names. *Sign-in risk*
//! belongs to one sign-in (an anonymous address, travel no one could make, a country or a whole
//! set of properties the user has never shown). *User risk* belongs to the person until it is
//! dismissed, confirmed or remediated (a leaked password, a brute-force run at their account, a
//! password spray their sign-in took part in). Every rule here is pure: the server gathers the
//! sightings and failures, this says what they mean and how bad it is.

use std::net::IpAddr;

use aws_lc_rs::digest;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::conditional::{Country, Platform, RiskLevel};
use crate::{RiskDetectionId, UserId};

/// What a detection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DetectionKind {
    /// Many wrong passwords at one account.
    BruteForce,
    /// One password tried across many accounts, from one address or many.
    PasswordSpray,
    /// Two sign-ins farther apart than anyone could travel in the time between them.
    ImpossibleTravel,
    /// A sign-in from a country the user has not signed in from before.
    NewCountry,
    /// Platform, network and country all new to the user at once.
    UnfamiliarProperties,
    /// An address on the operator's list of anonymising proxies and Tor exits.
    AnonymousAddress,
    /// The user's password is on the list of passwords known from breaches.
    LeakedCredentials,
    /// An administrator confirmed the account compromised.
    AdminConfirmedCompromised,
}

impl DetectionKind {
    pub const ALL: [Self; 8] = [
        Self::BruteForce,
        Self::PasswordSpray,
        Self::ImpossibleTravel,
        Self::NewCountry,
        Self::UnfamiliarProperties,
        Self::AnonymousAddress,
        Self::LeakedCredentials,
        Self::AdminConfirmedCompromised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BruteForce => "brute_force",
            Self::PasswordSpray => "password_spray",
            Self::ImpossibleTravel => "impossible_travel",
            Self::NewCountry => "new_country",
            Self::UnfamiliarProperties => "unfamiliar_properties",
            Self::AnonymousAddress => "anonymous_address",
            Self::LeakedCredentials => "leaked_credentials",
            Self::AdminConfirmedCompromised => "admin_confirmed_compromised",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Whether the detection is about the account (user risk) rather than one sign-in. A
    /// spray is about the account when the sprayed password was the account's.
    pub fn is_about_the_user(self) -> bool {
        matches!(
            self,
            Self::BruteForce
                | Self::PasswordSpray
                | Self::LeakedCredentials
                | Self::AdminConfirmedCompromised
        )
    }
}

/// Where a detection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RiskState {
    /// Counts towards the user's risk.
    AtRisk,
    /// An administrator confirmed the account compromised: the user is at high risk until they
    /// are remediated.
    ConfirmedCompromised,
    /// An administrator judged it harmless.
    Dismissed,
    /// The user changed their password after a second factor, or an administrator reset it.
    Remediated,
}

impl RiskState {
    pub const ALL: [Self; 4] = [
        Self::AtRisk,
        Self::ConfirmedCompromised,
        Self::Dismissed,
        Self::Remediated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AtRisk => "at_risk",
            Self::ConfirmedCompromised => "confirmed_compromised",
            Self::Dismissed => "dismissed",
            Self::Remediated => "remediated",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether a detection in this state still makes its user risky.
    pub fn is_open(self) -> bool {
        matches!(self, Self::AtRisk | Self::ConfirmedCompromised)
    }
}

/// A detection as recorded.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RiskDetection {
    pub id: RiskDetectionId,
    /// Absent for a finding about the tenant as a whole (a spray not tied to one account).
    pub user_id: Option<UserId>,
    pub kind: DetectionKind,
    pub level: RiskLevel,
    pub state: RiskState,
    /// What the finding was made from: counts, places, times.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub evidence: serde_json::Value,
    pub source_ip: Option<String>,
    pub country: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub detected_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A user at risk: their level and the detections behind it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RiskyUser {
    pub user_id: UserId,
    pub user_name: String,
    pub level: RiskLevel,
    /// Open detections about the user.
    pub detections: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub last_detected_at: OffsetDateTime,
}

/// The level of a user with these detections: the highest open one about the account, high for
/// any confirmed compromise. Of the detections about single sign-ins only the high ones count
/// (travel no one could make means someone else has the password); a new country alone does
/// not make a person risky for good.
pub fn user_level(
    detections: impl IntoIterator<Item = (DetectionKind, RiskLevel, RiskState)>,
) -> RiskLevel {
    detections
        .into_iter()
        .filter(|(kind, level, state)| {
            state.is_open() && (kind.is_about_the_user() || *level == RiskLevel::High)
        })
        .map(|(_, level, state)| match state {
            RiskState::ConfirmedCompromised => RiskLevel::High,
            _ => level,
        })
        .max()
        .unwrap_or(RiskLevel::None)
}

/// A finding, with what it was found from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub kind: DetectionKind,
    pub level: RiskLevel,
    pub evidence: serde_json::Value,
}

/// The sign-in risk of a sign-in with these findings: the highest.
pub fn sign_in_level(detections: &[Detection]) -> RiskLevel {
    detections
        .iter()
        .filter(|d| !d.kind.is_about_the_user())
        .map(|d| d.level)
        .max()
        .unwrap_or(RiskLevel::None)
}

/// A point on the earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coordinates {
    pub latitude: f64,
    pub longitude: f64,
}

impl Coordinates {
    /// Valid latitude and longitude, or nothing.
    pub fn new(latitude: f64, longitude: f64) -> Option<Self> {
        ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude)).then_some(
            Self {
                latitude,
                longitude,
            },
        )
    }

    /// The great-circle distance in kilometres (haversine, on a sphere of the earth's mean
    /// radius: GeoIP places are far coarser than the error of that).
    pub fn distance_km(self, other: Self) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6_371.0;
        let (a, b) = (self.latitude.to_radians(), other.latitude.to_radians());
        let d_lat = b - a;
        let d_lon = (other.longitude - self.longitude).to_radians();
        let h = (d_lat / 2.0).sin().powi(2) + a.cos() * b.cos() * (d_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
    }
}

/// Where and how a user was seen signing in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sighting {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub country: Option<Country>,
    pub asn: Option<u32>,
    pub coordinates: Option<Coordinates>,
    pub platform: Platform,
}

/// Faster than an airliner, door to door.
pub const MAX_TRAVEL_KMH: f64 = 1_000.0;
/// GeoIP coordinates are a city's at best: nearer than this is not travel.
pub const MIN_TRAVEL_KM: f64 = 500.0;
/// How many of a user's past sign-ins are compared with a new one.
pub const HISTORY: usize = 30;

/// What a sign-in seen as `now`, from an address that is (or is not) anonymous, says against
/// the user's earlier sign-ins (`history`, newest first). A user with no history has nothing to
/// be unfamiliar with, so only the address is judged.
pub fn assess(now: &Sighting, history: &[Sighting], anonymous: bool) -> Vec<Detection> {
    let mut found = Vec::new();
    if anonymous {
        found.push(Detection {
            kind: DetectionKind::AnonymousAddress,
            level: RiskLevel::Medium,
            evidence: json!({}),
        });
    }
    if history.is_empty() {
        return found;
    }
    if let Some(travel) = impossible_travel(now, history) {
        found.push(travel);
    }
    let seen_country = |c: Country| history.iter().any(|h| h.country == Some(c));
    let new_country = now.country.filter(|c| !seen_country(*c));
    if let Some(country) = new_country {
        found.push(Detection {
            kind: DetectionKind::NewCountry,
            level: RiskLevel::Low,
            evidence: json!({ "country": country }),
        });
    }
    let new_network = now
        .asn
        .filter(|asn| !history.iter().any(|h| h.asn == Some(*asn)));
    let new_platform = !history.iter().any(|h| h.platform == now.platform);
    if let (Some(country), Some(asn), true) = (new_country, new_network, new_platform) {
        found.push(Detection {
            kind: DetectionKind::UnfamiliarProperties,
            level: RiskLevel::Medium,
            evidence: json!({ "country": country, "asn": asn, "platform": now.platform }),
        });
    }
    found
}

/// The latest earlier sign-in with a place, if getting from there to here in the time between
/// would take travelling faster than [`MAX_TRAVEL_KMH`].
fn impossible_travel(now: &Sighting, history: &[Sighting]) -> Option<Detection> {
    let here = now.coordinates?;
    let before = history.iter().find(|h| h.coordinates.is_some())?;
    let distance = before.coordinates?.distance_km(here);
    if distance < MIN_TRAVEL_KM {
        return None;
    }
    // A clock step backwards must not read as infinite speed in the other direction.
    let hours = ((now.at - before.at).as_seconds_f64() / 3_600.0).max(1.0 / 3_600.0);
    let speed = distance / hours;
    (speed > MAX_TRAVEL_KMH).then(|| Detection {
        kind: DetectionKind::ImpossibleTravel,
        level: RiskLevel::High,
        evidence: json!({
            "from_country": before.country,
            "to_country": now.country,
            "distance_km": distance.round(),
            "minutes": (hours * 60.0).round(),
            "speed_kmh": speed.round(),
            "previous_sign_in_at": before.at.unix_timestamp(),
        }),
    })
}

/// How far back failed passwords are compared with each other.
pub const FAILURE_WINDOW: Duration = Duration::hours(1);
/// Wrong passwords at one account within the window that make a brute-force run.
pub const BRUTE_FORCE_FAILURES: u32 = 10;
/// Accounts one password was tried at within the window that make a spray.
pub const SPRAY_ACCOUNTS: u32 = 10;

/// A brute-force run at one account that has seen `failures` wrong passwords from `sources`
/// addresses within the window, if it is one. Never high by itself: high risk ends the user's
/// sessions, and wrong guesses alone must not let a stranger sign anyone out.
pub fn brute_force(failures: u32, sources: u32) -> Option<Detection> {
    (failures >= BRUTE_FORCE_FAILURES).then(|| Detection {
        kind: DetectionKind::BruteForce,
        level: RiskLevel::Medium,
        evidence: json!({ "failures": failures, "sources": sources, "window_minutes": FAILURE_WINDOW.whole_minutes() }),
    })
}

/// A password spray: one password tried at `accounts` accounts from `sources` addresses within
/// the window, if it is one. Many sources for one password is the distributed kind.
pub fn password_spray(accounts: u32, sources: u32) -> Option<Detection> {
    (accounts >= SPRAY_ACCOUNTS).then(|| Detection {
        kind: DetectionKind::PasswordSpray,
        level: if accounts >= 5 * SPRAY_ACCOUNTS {
            RiskLevel::High
        } else {
            RiskLevel::Medium
        },
        evidence: json!({
            "accounts": accounts,
            "sources": sources,
            "distributed": sources > 1,
            "window_minutes": FAILURE_WINDOW.whole_minutes(),
        }),
    })
}

/// The SHA-1 of a password's UTF-8 bytes: the form breached-password corpora publish. SHA-1
/// serves here only to match those lists, never to store a password.
pub fn leaked_password_hash(password: &str) -> [u8; 20] {
    let digest = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
    let mut hash = [0u8; 20];
    hash.copy_from_slice(digest.as_ref());
    hash
}

/// One line of a breached-password list: 40 hexadecimal digits, optionally followed by
/// `:count` (the Pwned Passwords format). Blank lines and `#` comments are `Ok(None)`.
pub fn parse_leaked_line(line: &str) -> Result<Option<[u8; 20]>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let digits = line.split_once(':').map_or(line, |(hash, _)| hash).trim();
    let mut hash = [0u8; 20];
    hex::decode_to_slice(digits, &mut hash).map_err(|_| {
        "expected a SHA-1 hash as 40 hexadecimal digits, optionally followed by :count".to_owned()
    })?;
    Ok(Some(hash))
}

/// The operator's list of anonymising networks (open proxies, VPN exits, Tor exit nodes), one
/// CIDR range or address per line. Kept merged and sorted, so that a lookup is a binary search
/// however long the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnonymousNetworks(Vec<IpNet>);

impl AnonymousNetworks {
    /// The list in `text`: a range (`192.0.2.0/24`, `2001:db8::/32`) or an address per line;
    /// blank lines and `#` comments are skipped. A line that is neither is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut networks = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let network = line
                .parse::<IpNet>()
                .or_else(|_| line.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "line {}: {line:?} is not a network such as 192.0.2.0/24 or an address",
                        number + 1
                    )
                })?;
            networks.push(network.trunc());
        }
        Ok(Self(IpNet::aggregate(&networks)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is in a listed network. Aggregated networks do not overlap, so only
    /// the last one starting at or before the address can hold it.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = crate::network::canonical(address);
        let after = self.0.partition_point(|n| n.network() <= address);
        after > 0 && self.0[after - 1].contains(&address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seen(minutes_ago: i64, country: &str, at: Coordinates) -> Sighting {
        Sighting {
            at: OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
                - Duration::minutes(minutes_ago),
            country: Country::parse(country),
            asn: Some(64_500),
            coordinates: Some(at),
            platform: Platform::Windows,
        }
    }

    const BERLIN: Coordinates = Coordinates {
        latitude: 52.52,
        longitude: 13.40,
    };
    const SYDNEY: Coordinates = Coordinates {
        latitude: -33.87,
        longitude: 151.21,
    };
    const POTSDAM: Coordinates = Coordinates {
        latitude: 52.39,
        longitude: 13.06,
    };

    fn kinds(found: &[Detection]) -> Vec<DetectionKind> {
        found.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn distances_are_great_circles() {
        let km = BERLIN.distance_km(SYDNEY);
        assert!((16_000.0..16_200.0).contains(&km), "{km}");
        assert!(BERLIN.distance_km(POTSDAM) < 30.0);
        assert_eq!(BERLIN.distance_km(BERLIN), 0.0);
    }

    #[test]
    fn travel_faster_than_a_plane_is_impossible() {
        let history = [seen(10, "DE", BERLIN)];
        let found = assess(&seen(0, "AU", SYDNEY), &history, false);
        assert!(kinds(&found).contains(&DetectionKind::ImpossibleTravel));
        let travel = &found[0];
        assert_eq!(travel.level, RiskLevel::High);
        assert_eq!(travel.evidence["minutes"], 10.0);

        // A day later the same trip is a flight.
        let history = [seen(24 * 60, "DE", BERLIN)];
        let found = assess(&seen(0, "AU", SYDNEY), &history, false);
        assert!(!kinds(&found).contains(&DetectionKind::ImpossibleTravel));
        // And the next town over is never travel, however quick.
        let history = [seen(1, "DE", BERLIN)];
        assert!(assess(&seen(0, "DE", POTSDAM), &history, false).is_empty());
    }

    #[test]
    fn the_latest_placed_sign_in_is_the_one_compared() {
        let mut unplaced = seen(1, "DE", BERLIN);
        unplaced.coordinates = None;
        // Sydney a week ago, Berlin's unplaced sign-in a minute ago: compared with Sydney.
        let history = [unplaced, seen(7 * 24 * 60, "AU", SYDNEY)];
        let found = assess(&seen(0, "DE", BERLIN), &history, false);
        assert!(!kinds(&found).contains(&DetectionKind::ImpossibleTravel));
    }

    #[test]
    fn new_country_and_unfamiliar_properties() {
        let history = [seen(60 * 24 * 3, "DE", BERLIN)];
        let mut abroad = seen(0, "FR", Coordinates::new(48.85, 2.35).unwrap_or(BERLIN));
        assert_eq!(
            kinds(&assess(&abroad, &history, false)),
            [DetectionKind::NewCountry]
        );
        abroad.asn = Some(1);
        abroad.platform = Platform::Android;
        assert_eq!(
            kinds(&assess(&abroad, &history, false)),
            [
                DetectionKind::NewCountry,
                DetectionKind::UnfamiliarProperties
            ]
        );
        // Nothing to be unfamiliar with on a first sign-in, but an anonymous address is one.
        assert!(assess(&abroad, &[], false).is_empty());
        assert_eq!(
            kinds(&assess(&abroad, &[], true)),
            [DetectionKind::AnonymousAddress]
        );
    }

    #[test]
    fn an_unknown_country_is_never_new() {
        let history = [seen(60, "DE", BERLIN)];
        let mut unknown = seen(0, "DE", BERLIN);
        unknown.country = None;
        assert!(assess(&unknown, &history, false).is_empty());
    }

    #[test]
    fn thresholds_of_failure_detections() {
        assert_eq!(brute_force(BRUTE_FORCE_FAILURES - 1, 1), None);
        assert_eq!(
            brute_force(BRUTE_FORCE_FAILURES, 1).map(|d| d.level),
            Some(RiskLevel::Medium)
        );
        assert_eq!(
            brute_force(1_000, 1).map(|d| d.level),
            Some(RiskLevel::Medium)
        );
        assert_eq!(password_spray(SPRAY_ACCOUNTS - 1, 1), None);
        let spray = password_spray(50, 1);
        assert_eq!(spray.as_ref().map(|d| d.level), Some(RiskLevel::High));
        assert_eq!(
            spray.map(|d| d.evidence["distributed"].clone()),
            Some(json!(false))
        );
    }

    #[test]
    fn user_level_is_the_highest_open_detection() {
        use RiskLevel::*;
        use RiskState::*;
        let leaked = DetectionKind::LeakedCredentials;
        let abroad = DetectionKind::NewCountry;
        let travel = DetectionKind::ImpossibleTravel;
        assert_eq!(user_level([]), None);
        assert_eq!(
            user_level([(leaked, Medium, AtRisk), (leaked, Low, AtRisk)]),
            Medium
        );
        assert_eq!(
            user_level([(leaked, High, Dismissed), (leaked, Low, AtRisk)]),
            Low
        );
        assert_eq!(user_level([(leaked, High, Remediated)]), None);
        assert_eq!(user_level([(leaked, Low, ConfirmedCompromised)]), High);
        // A new country is the sign-in's risk, not the person's; impossible travel is both.
        assert_eq!(user_level([(abroad, Medium, AtRisk)]), None);
        assert_eq!(user_level([(travel, High, AtRisk)]), High);
    }

    #[test]
    fn leaked_hashes_match_the_published_form() {
        // The SHA-1 of "password", as every breach corpus lists it.
        let expected = parse_leaked_line("5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824");
        assert_eq!(expected, Ok(Some(leaked_password_hash("password"))));
        assert_eq!(parse_leaked_line("  # comment"), Ok(None));
        assert_eq!(parse_leaked_line(""), Ok(None));
        assert!(parse_leaked_line("5BAA61E4").is_err());
        assert!(parse_leaked_line("zz").is_err());
    }

    #[test]
    fn kinds_and_states_round_trip() {
        for kind in DetectionKind::ALL {
            assert_eq!(DetectionKind::parse(kind.as_str()), Some(kind));
        }
        for state in RiskState::ALL {
            assert_eq!(RiskState::parse(state.as_str()), Some(state));
        }
    }

    #[test]
    fn anonymous_networks_are_found_by_search() {
        let list = AnonymousNetworks::parse(
            "# Tor exits\n198.51.100.7\n203.0.113.0/24 # a VPN\n203.0.113.128/25\n\n2001:db8::/32\n",
        );
        let list = list.unwrap_or_default();
        assert_eq!(list.len(), 3, "{list:?}");
        let is = |a: &str| a.parse().is_ok_and(|a| list.contains(a));
        assert!(is("198.51.100.7") && is("203.0.113.200") && is("2001:db8::1"));
        assert!(
            is("::ffff:203.0.113.1"),
            "mapped addresses are their IPv4 selves"
        );
        assert!(!is("198.51.100.8") && !is("203.0.114.0") && !is("2001:db9::1"));
        let bad = AnonymousNetworks::parse("10.0.0.0/8\nnot-an-address\n");
        assert!(bad.is_err_and(|e| e.starts_with("line 2:")));
    }

    proptest! {
        #[test]
        fn anonymous_search_agrees_with_a_scan(
            nets in proptest::collection::vec((any::<u32>(), 8u8..=32), 0..40),
            probes in proptest::collection::vec(any::<u32>(), 1..40),
        ) {
            let text: String = nets.iter().map(|(a, p)| format!("{}/{p}\n", std::net::Ipv4Addr::from(*a))).collect();
            let list = AnonymousNetworks::parse(&text).unwrap_or_default();
            let parsed: Vec<IpNet> = nets.iter().filter_map(|(a, p)| format!("{}/{p}", std::net::Ipv4Addr::from(*a)).parse().ok()).collect();
            for probe in probes {
                let address = IpAddr::from(std::net::Ipv4Addr::from(probe));
                prop_assert_eq!(list.contains(address), parsed.iter().any(|n| n.contains(&address)));
            }
        }

        #[test]
        fn leaked_lines_never_panic(line in ".{0,100}") {
            let _ = parse_leaked_line(&line);
        }

        #[test]
        fn any_hash_round_trips(bytes in proptest::array::uniform20(any::<u8>()), count in proptest::option::of(0u32..1_000_000)) {
            let mut line = hex::encode(bytes);
            if let Some(count) = count {
                line.push_str(&format!(":{count}"));
            }
            prop_assert_eq!(parse_leaked_line(&line), Ok(Some(bytes)));
        }

        #[test]
        fn distance_is_symmetric_and_bounded(a in -90.0f64..90.0, b in -180.0f64..180.0, c in -90.0f64..90.0, d in -180.0f64..180.0) {
            let (x, y) = (Coordinates { latitude: a, longitude: b }, Coordinates { latitude: c, longitude: d });
            let (there, back) = (x.distance_km(y), y.distance_km(x));
            prop_assert!((there - back).abs() < 1e-6);
            prop_assert!((0.0..=20_016.0).contains(&there));
        }
    }
}
