//! Where an address is: its country and network (ASN), from MaxMind-format `.mmdb` files the
//! operator configures. Both the commercial GeoLite2 / GeoIP2 files and the free
//! `ip-location-db` ones are read (their records name the country differently). Without a
//! file, every address is in an unknown country, which conditional access says in its answers.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maxminddb::Reader;
use serde::Deserialize;

use portcullis_core::conditional::Country;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the GeoIP database {path}: {reason}. Give the path of a MaxMind-format .mmdb file, or leave the setting out"
)]
pub struct GeoError {
    path: PathBuf,
    reason: String,
}

/// What is known of an address.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Place {
    pub country: Option<Country>,
    pub asn: Option<u32>,
}

#[derive(Default)]
pub struct Geo {
    countries: Option<Reader<Vec<u8>>>,
    networks: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field("countries", &self.countries.is_some())
            .field("networks", &self.networks.is_some())
            .finish()
    }
}

/// A record of either family of files: `country_code` (ip-location-db) or `country.iso_code`
/// (MaxMind), and `autonomous_system_number` (both).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Record<'a> {
    #[serde(borrow)]
    country_code: Option<&'a str>,
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    /// Written as 32 bits by MaxMind, sometimes wider by other writers.
    autonomous_system_number: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IsoCode<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

fn open(path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    Reader::open_readfile(path).map_err(|e| GeoError {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

impl Geo {
    pub fn open(countries: Option<&Path>, networks: Option<&Path>) -> Result<Self, GeoError> {
        Ok(Self {
            countries: countries.map(open).transpose()?,
            networks: networks.map(open).transpose()?,
        })
    }

    /// Whether countries can be told at all.
    pub fn knows_countries(&self) -> bool {
        self.countries.is_some()
    }

    pub fn locate(&self, address: IpAddr) -> Place {
        let record = |reader: &Option<Reader<Vec<u8>>>| -> Option<(Option<Country>, Option<u32>)> {
            let found = reader.as_ref()?.lookup(address).ok()?;
            let record: Record<'_> = found.decode().ok()??;
            let code = record
                .country_code
                .or(record.country.and_then(|c| c.iso_code));
            let asn = record
                .autonomous_system_number
                .and_then(|n| u32::try_from(n).ok());
            Some((code.and_then(Country::parse), asn))
        };
        let (country, asn_in_countries) = record(&self.countries).unwrap_or_default();
        let asn = record(&self.networks)
            .and_then(|(_, asn)| asn)
            .or(asn_in_countries);
        Place { country, asn }
    }
}
