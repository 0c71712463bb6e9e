//! Where a request comes from when reverse proxies stand in front of the server.
//!
//! A proxy tells the address it received a request from in `Forwarded` (RFC 7239) or the older
//! `X-Forwarded-For`. Anyone can send those headers, so they are believed only from a peer the
//! operator named as a trusted proxy, and only as far back as the chain stays within trusted
//! proxies: the client is the nearest address, walking from the server outwards, that is not a
//! trusted proxy. Everything a client wrote into the headers itself lies further out than that,
//! so it cannot choose the address it is throttled, logged and judged by.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ValidationError;

/// The networks whose forwarding headers are believed. Empty by default: the socket's peer is
/// the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// At most this many hops of a forwarding chain are read; a longer chain is cut at the far end.
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// Networks in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare address is one host.
    pub fn parse(networks: &[String]) -> Result<Self, ValidationError> {
        networks
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<IpNet>()
                    .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        ValidationError::new(
                            "trusted_proxies",
                            format!("{text:?} is not a network such as 10.0.0.0/8 or an address"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|network| network.contains(&address))
    }

    /// The client's address, given the socket's `peer` and the values of every `Forwarded` and
    /// `X-Forwarded-For` header line, in order. `Forwarded` wins when both are present (a proxy
    /// that writes it knows the newer standard). A hop that is not an address (`unknown`, an
    /// obfuscated name, garbage) ends the walk at the last trusted hop before it.
    pub fn client_address(
        &self,
        peer: IpAddr,
        forwarded: &[&str],
        x_forwarded_for: &[&str],
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        // Read from the server outwards, and no further than MAX_HOPS: a client can make the
        // headers long, not the walk.
        let nearest_first: Box<dyn Iterator<Item = Option<IpAddr>>> = if forwarded.is_empty() {
            Box::new(
                x_forwarded_for
                    .iter()
                    .rev()
                    .flat_map(|line| line.rsplit(','))
                    .map(|hop| parse_hop(hop.trim())),
            )
        } else {
            Box::new(
                forwarded
                    .iter()
                    .rev()
                    .flat_map(|line| line.rsplit(','))
                    .map(forwarded_for),
            )
        };
        let mut client = peer;
        for hop in nearest_first.take(MAX_HOPS) {
            let Some(address) = hop else { break };
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        client
    }
}

/// An IPv4 address that arrived as IPv4-mapped IPv6 (`::ffff:192.0.2.1`, as a dual-stack
/// socket reports it) is that IPv4 address, so that one network entry covers both spellings.
pub(crate) fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The `for=` node of one `Forwarded` element, if it is an address.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(canonical);
    }
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(networks: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&networks.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let none = TrustedProxies::default();
        let peer = ip("198.51.100.7");
        assert_eq!(none.client_address(peer, &[], &["203.0.113.9"]), peer);
        assert_eq!(none.client_address(peer, &["for=203.0.113.9"], &[]), peer);
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_address() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("198.51.100.7");
        assert_eq!(proxies.client_address(peer, &[], &["10.1.2.3"]), peer);
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = trusted(&["10.0.0.0/8", "192.168.1.1"]);
        let peer = ip("10.0.0.5");
        // The client wrote 1.2.3.4 itself; the edge proxy appended the address it saw.
        let chain = ["1.2.3.4, 203.0.113.9, 192.168.1.1"];
        assert_eq!(proxies.client_address(peer, &[], &chain), ip("203.0.113.9"));
        // Split over several header lines, the order is the same.
        let lines = ["1.2.3.4", "203.0.113.9", "192.168.1.1"];
        assert_eq!(proxies.client_address(peer, &[], &lines), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it_and_wins_over_x_forwarded_for() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        let forwarded =
            [r#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711""#];
        assert_eq!(
            proxies.client_address(peer, &forwarded, &["198.51.100.1"]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            proxies.client_address(peer, &["for=192.0.2.60:8080"], &[]),
            ip("192.0.2.60")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_the_walk_at_the_last_trusted_one() {
        let proxies = trusted(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        assert_eq!(
            proxies.client_address(peer, &[], &["203.0.113.9, garbage, 10.0.0.9"]),
            ip("10.0.0.9")
        );
        assert_eq!(proxies.client_address(peer, &["for=unknown"], &[]), peer);
        assert_eq!(proxies.client_address(peer, &["for=_hidden"], &[]), peer);
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_networks() {
        let proxies = trusted(&["127.0.0.1"]);
        assert!(proxies.contains(ip("::ffff:127.0.0.1")));
        assert_eq!(
            proxies.client_address(ip("::ffff:127.0.0.1"), &[], &["::ffff:203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn networks_are_checked_when_read() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["proxy.example.com".into()]).is_err());
        assert!(TrustedProxies::parse(&["2001:db8::/32".into(), " 10.1.2.3 ".into()]).is_ok());
    }

    proptest! {
        /// Whatever a client puts in the headers, the answer is the peer or an address that a
        /// trusted proxy vouched for: an address written left of the first untrusted hop
        /// (counting from the server) is never the answer.
        #[test]
        fn the_client_cannot_reach_past_the_first_untrusted_hop(
            written in proptest::collection::vec(any::<[u8; 4]>(), 0..6),
            vouched in proptest::collection::vec(any::<[u8; 4]>(), 0..6),
        ) {
            let proxies = trusted(&["10.0.0.0/8"]);
            let peer = ip("10.9.9.9");
            let chain: Vec<String> = written.iter().chain(vouched.iter())
                .map(|o| std::net::Ipv4Addr::from(*o).to_string())
                .collect();
            let header = chain.join(", ");
            let answer = proxies.client_address(peer, &[], &[header.as_str()]);
            let hops: Vec<IpAddr> = chain.iter().map(|h| ip(h)).collect();
            let first_untrusted = hops.iter().rposition(|h| !proxies.contains(*h));
            match first_untrusted {
                Some(at) => prop_assert_eq!(answer, hops[at]),
                None => prop_assert!(answer == peer || hops.contains(&answer)),
            }
            prop_assert!(answer == peer || hops.contains(&answer));
        }

        #[test]
        fn a_long_chain_is_read_no_further_than_its_nearest_hops(
            padding in 0usize..5_000,
        ) {
            let proxies = trusted(&["10.0.0.0/8"]);
            let peer = ip("10.9.9.9");
            // Far hops the client wrote, then more trusted hops than are ever read.
            let mut hops = vec!["203.0.113.9".to_owned(); padding + 1];
            hops.extend((0..MAX_HOPS + 1).map(|i| format!("10.0.0.{i}")));
            let header = hops.join(", ");
            let answer = proxies.client_address(peer, &[], &[header.as_str()]);
            prop_assert!(proxies.contains(answer), "the walk stopped at a trusted hop");
        }

        #[test]
        fn any_header_text_is_safe(forwarded in ".{0,200}", xff in ".{0,200}") {
            let proxies = trusted(&["10.0.0.0/8"]);
            let peer = ip("10.9.9.9");
            let _ = proxies.client_address(peer, &[forwarded.as_str()], &[]);
            let _ = proxies.client_address(peer, &[], &[xff.as_str()]);
        }
    }
}
