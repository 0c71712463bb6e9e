//! Which named locations an address and a country are at, in time that does not grow with the
//! number of locations: the networks are grouped by prefix length, and an address is looked up
//! once per length in use (a handful in practice), not once per network.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Country, NamedLocation};
use crate::ids::NamedLocationId;

/// A set of location indexes, one bit each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocationSet(Vec<u64>);

impl LocationSet {
    fn with_capacity(locations: usize) -> Self {
        Self(vec![0; locations.div_ceil(64)])
    }

    fn insert(&mut self, index: u32) {
        if let Some(word) = self.0.get_mut(index as usize / 64) {
            *word |= 1 << (index % 64);
        }
    }

    pub fn contains(&self, index: u32) -> bool {
        self.0
            .get(index as usize / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    fn intersects(&self, other: &[u64]) -> bool {
        self.0.iter().zip(other).any(|(a, b)| a & b != 0)
    }
}

/// The networks of one address family, grouped by prefix length: for each length in use, the
/// masked network address and the locations holding that network.
#[derive(Debug, Default)]
struct Prefixes {
    by_length: Vec<(u8, HashMap<u128, Vec<u32>>)>,
}

impl Prefixes {
    fn insert(&mut self, length: u8, network: u128, location: u32) {
        let table = match self.by_length.iter().position(|(l, _)| *l == length) {
            Some(i) => &mut self.by_length[i].1,
            None => {
                self.by_length.push((length, HashMap::new()));
                self.by_length.sort_by_key(|(l, _)| *l);
                let i = self
                    .by_length
                    .iter()
                    .position(|(l, _)| *l == length)
                    .unwrap_or_default();
                &mut self.by_length[i].1
            }
        };
        let holders = table.entry(network).or_default();
        if !holders.contains(&location) {
            holders.push(location);
        }
    }

    fn lookup(&self, address: u128, bits: u8, into: &mut LocationSet) {
        for (length, table) in &self.by_length {
            if let Some(holders) = table.get(&mask(address, *length, bits)) {
                for location in holders {
                    into.insert(*location);
                }
            }
        }
    }
}

/// `address` (of `bits` bits) with all but its first `length` bits cleared.
fn mask(address: u128, length: u8, bits: u8) -> u128 {
    if length == 0 {
        0
    } else {
        let width = u32::from(bits);
        let keep = u32::from(length).min(width);
        let all = if width == 128 {
            u128::MAX
        } else {
            (1u128 << width) - 1
        };
        address & (all << (width - keep)) & all
    }
}

/// A tenant's named locations, ready to be looked up.
#[derive(Debug, Default)]
pub struct LocationIndex {
    ids: Vec<NamedLocationId>,
    names: Vec<String>,
    v4: Prefixes,
    v6: Prefixes,
    countries: HashMap<Country, Vec<u32>>,
    unknown_country: Vec<u32>,
    /// One bit per trusted location.
    trusted: Vec<u64>,
}

impl LocationIndex {
    pub fn build(locations: &[NamedLocation]) -> Self {
        let mut index = Self {
            trusted: vec![0; locations.len().div_ceil(64)],
            ..Self::default()
        };
        for (i, location) in locations.iter().enumerate() {
            let at = i as u32;
            index.ids.push(location.id);
            index.names.push(location.name.clone());
            for range in &location.ranges {
                let range = range.trunc();
                match range {
                    ipnet::IpNet::V4(net) => {
                        index
                            .v4
                            .insert(net.prefix_len(), u128::from(u32::from(net.network())), at)
                    }
                    ipnet::IpNet::V6(net) => {
                        index
                            .v6
                            .insert(net.prefix_len(), u128::from(net.network()), at)
                    }
                }
            }
            for country in &location.countries {
                index.countries.entry(*country).or_default().push(at);
            }
            if location.include_unknown_countries {
                index.unknown_country.push(at);
            }
            if location.trusted {
                index.trusted[i / 64] |= 1 << (i % 64);
            }
        }
        index
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The index of a location by id.
    pub fn position(&self, id: NamedLocationId) -> Option<u32> {
        self.ids.iter().position(|l| *l == id).map(|i| i as u32)
    }

    pub fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("", String::as_str)
    }

    pub fn id(&self, index: u32) -> Option<NamedLocationId> {
        self.ids.get(index as usize).copied()
    }

    /// Every location the address and the country are at.
    pub fn locate(&self, address: Option<IpAddr>, country: Option<Country>) -> LocationSet {
        let mut at = LocationSet::with_capacity(self.ids.len());
        match address.map(crate::network::canonical) {
            Some(IpAddr::V4(v4)) => self.v4.lookup(u128::from(u32::from(v4)), 32, &mut at),
            Some(IpAddr::V6(v6)) => self.v6.lookup(u128::from(v6), 128, &mut at),
            None => {}
        }
        let by_country = match country {
            Some(country) => self.countries.get(&country).map_or(&[][..], Vec::as_slice),
            None => &self.unknown_country,
        };
        for location in by_country {
            at.insert(*location);
        }
        at
    }

    /// Whether any of the locations in `at` is trusted.
    pub fn any_trusted(&self, at: &LocationSet) -> bool {
        at.intersects(&self.trusted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(name: &str, ranges: &[&str], countries: &[&str]) -> NamedLocation {
        NamedLocation {
            id: NamedLocationId::generate(),
            name: name.into(),
            trusted: countries.is_empty(),
            ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
            countries: countries
                .iter()
                .map(|c| Country::parse(c).unwrap())
                .collect(),
            include_unknown_countries: false,
        }
    }

    #[test]
    fn addresses_find_every_location_whose_network_holds_them() {
        let index = LocationIndex::build(&[
            location("office", &["192.0.2.0/24", "2001:db8::/32"], &[]),
            location("building", &["192.0.2.128/25"], &[]),
            location("everywhere", &["0.0.0.0/0"], &[]),
            location("nz", &[], &["NZ"]),
        ]);
        let at = index.locate(Some("192.0.2.200".parse().unwrap()), None);
        assert!(at.contains(0) && at.contains(1) && at.contains(2) && !at.contains(3));
        let at = index.locate(Some("192.0.2.5".parse().unwrap()), Country::parse("nz"));
        assert!(at.contains(0) && !at.contains(1) && at.contains(2) && at.contains(3));
        let at = index.locate(Some("2001:db8:1::1".parse().unwrap()), None);
        assert!(at.contains(0) && !at.contains(2));
        // An IPv4 address written as IPv4-mapped IPv6 is the IPv4 address.
        let at = index.locate(Some("::ffff:192.0.2.200".parse().unwrap()), None);
        assert!(at.contains(1));
        assert!(index.any_trusted(&index.locate(Some("192.0.2.1".parse().unwrap()), None)));
        assert!(!index.any_trusted(&index.locate(None, Country::parse("NZ"))));
    }

    #[test]
    fn host_bits_in_a_network_are_ignored() {
        let index = LocationIndex::build(&[location("sloppy", &["198.51.100.77/24"], &[])]);
        assert!(
            index
                .locate(Some("198.51.100.1".parse().unwrap()), None)
                .contains(0)
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The index finds exactly what checking every network one by one finds.
            #[test]
            fn agrees_with_a_linear_scan(
                networks in prop::collection::vec((any::<u32>(), 0u8..=32), 1..40),
                probes in prop::collection::vec(any::<u32>(), 1..40),
            ) {
                let locations: Vec<NamedLocation> = networks
                    .chunks(3)
                    .enumerate()
                    .map(|(i, chunk)| NamedLocation {
                        id: NamedLocationId::generate(),
                        name: format!("l{i}"),
                        trusted: false,
                        ranges: chunk
                            .iter()
                            .map(|(a, l)| ipnet::IpNet::V4(ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(*a), *l).unwrap()))
                            .collect(),
                        countries: vec![],
                        include_unknown_countries: false,
                    })
                    .collect();
                let index = LocationIndex::build(&locations);
                for probe in probes.iter().chain(networks.iter().map(|(a, _)| a)) {
                    let address = IpAddr::V4(std::net::Ipv4Addr::from(*probe));
                    let at = index.locate(Some(address), None);
                    for (i, location) in locations.iter().enumerate() {
                        let expected = location.ranges.iter().any(|r| r.contains(&address));
                        prop_assert_eq!(at.contains(i as u32), expected);
                    }
                }
            }
        }
    }
}
