//! Where an address is: its country, network (ASN) and coordinates, from MaxMind-format
//! `.mmdb` files the operator configures, and whether it is on the operator's list of
//! anonymising networks. Both the commercial GeoLite2 / GeoIP2 files and the free
//! `ip-location-db` ones are read (their records name the country and place differently).
//! Without a file, every address is in an unknown country, which conditional access says in
//! its answers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;

use portcullis_core::conditional::Country;
use portcullis_core::risk::{AnonymousNetworks, Coordinates};

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error(
        "cannot read the GeoIP database {path}: {reason}. Give the path of a MaxMind-format .mmdb file, or leave the setting out"
    )]
    Database { path: PathBuf, reason: String },
    #[error("cannot read the anonymous networks list {path}: {reason}")]
    Networks { path: PathBuf, reason: String },
}

/// What is known of an address.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Place {
    pub country: Option<Country>,
    pub asn: Option<u32>,
    /// From a city-level file only.
    pub coordinates: Option<Coordinates>,
    /// On the operator's list of anonymising networks.
    pub anonymous: bool,
}

#[derive(Default)]
pub struct Geo {
    countries: Option<Reader<Vec<u8>>>,
    networks: Option<Reader<Vec<u8>>>,
    anonymous: AnonymousNetworks,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("countries", &self.countries.is_some())
            .field("networks", &self.networks.is_some())
            .field("anonymous", &self.anonymous.len())
            .finish()
    }
}

/// A record of either family of files: `country_code` (ip-location-db) or `country.iso_code`
/// (MaxMind), `latitude` / `longitude` (ip-location-db city files) or `location.latitude` /
/// `location.longitude` (MaxMind City), and `autonomous_system_number` (both).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    /// Written as 32 bits by MaxMind, sometimes wider by other writers.
    autonomous_system_number: Option<u64>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    location: Option<Location>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Location {
    latitude: Option<f64>,
    longitude: Option<f64>,
}

impl Record<'_> {
    fn coordinates(&self) -> Option<Coordinates> {
        let (latitude, longitude) = match &self.location {
            Some(Location {
                latitude: Some(lat),
                longitude: Some(lon),
            }) => (*lat, *lon),
            _ => (self.latitude?, self.longitude?),
        };
        Coordinates::new(latitude, longitude)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

fn open(path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    Reader::open_readfile(path).map_err(|e| GeoError::Database {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn anonymous_networks(path: &Path) -> Result<AnonymousNetworks, GeoError> {
    let failed = |reason: String| GeoError::Networks {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
    AnonymousNetworks::parse(&text).map_err(failed)
}

impl Geo {
    pub fn open(
        countries: Option<&Path>,
        networks: Option<&Path>,
        anonymous: Option<&Path>,
    ) -> Result<Self, GeoError> {
        Ok(Self {
            countries: countries.map(open).transpose()?,
            networks: networks.map(open).transpose()?,
            anonymous: anonymous
                .map(anonymous_networks)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Whether countries can be told at all.
    pub fn knows_countries(&self) -> bool {
        self.countries.is_some()
    }

    pub fn locate(&self, address: IpAddr) -> Place {
        let record = |reader: &Option<Reader<Vec<u8>>>| -> Option<Place> {
            let found = reader.as_ref()?.lookup(address).ok()?;
            let record: Record<'_> = found.decode().ok()??;
            let code = record
                .country_code
                .or(record.country.as_ref().and_then(|c| c.iso_code));
            Some(Place {
                country: code.and_then(Country::parse),
                asn: record
                    .autonomous_system_number
                    .and_then(|n| u32::try_from(n).ok()),
                coordinates: record.coordinates(),
                anonymous: false,
            })
        };
        let in_countries = record(&self.countries).unwrap_or_default();
        let asn = record(&self.networks)
            .and_then(|p| p.asn)
            .or(in_countries.asn);
        Place {
            asn,
            anonymous: self.anonymous.contains(address),
            ..in_countries
        }
    }
}
