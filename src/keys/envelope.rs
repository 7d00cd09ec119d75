//! A key's usage envelope: the networks it may be used from and how many
//! tokens it may be issued a minute, set at creation and changed later
//! (`keys set`, `PATCH /api/v1/keys/{client_id}`, the console).
//!
//! Both are checked at every client authentication and token request
//! (`crate::client_auth`, `crate::token::issuance`); an empty envelope
//! allows everything, as keys created before envelopes existed do.

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::KeyError;
pub use super::limits::{MAX_NETWORKS, MAX_TOKENS_PER_MINUTE};

/// The networks a key may be used from, as stored: space-separated CIDRs,
/// each in its canonical form (host bits cleared). Empty: anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, diesel::FromSqlRow)]
pub struct AllowedNetworks(Vec<IpNet>);

crate::text_column!(AllowedNetworks, |text: String| {
    AllowedNetworks::from_stored(&text)
});

impl AllowedNetworks {
    /// Parses what a person typed: addresses and CIDRs separated by commas,
    /// spaces or new lines. A bare address is that one address; host bits
    /// are cleared (`10.1.2.3/24` is `10.1.2.0/24`, the same addresses).
    /// The word `any` (or nothing at all) is the empty list: anywhere.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let items: Vec<&str> = text
            .split([',', ' ', '\n', '\r', '\t'])
            .filter(|s| !s.is_empty())
            .collect();
        if items.len() == 1 && items[0].eq_ignore_ascii_case("any") {
            return Ok(Self::default());
        }
        Self::from_items(items)
    }

    /// The networks of a JSON list, one CIDR or address per string.
    pub fn from_items<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, KeyError> {
        let mut networks = Vec::new();
        for item in items {
            let item = item.trim();
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    KeyError::InvalidNetwork(crate::text::redact_secret(item).into_owned())
                })?;
            let net = canonical(net);
            if !networks.contains(&net) {
                networks.push(net);
            }
        }
        if networks.len() > MAX_NETWORKS {
            return Err(KeyError::TooManyNetworks);
        }
        Ok(Self(networks))
    }

    /// Reads a list this program wrote itself; an entry that does not parse
    /// (never written by keygate) is kept out, and then nothing matches it.
    fn from_stored(text: &str) -> Self {
        Self(text.split(' ').filter_map(|s| s.parse().ok()).collect())
    }

    /// The stored text; `None` for anywhere.
    pub fn to_stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(IpNet::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    /// Whether a request from `addr` may use the key. Unknown addresses
    /// (no TCP peer) are allowed only when the list is empty.
    pub fn allows(&self, addr: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(addr) = addr.map(|a| a.to_canonical()) else {
            return false;
        };
        self.0.iter().any(|net| net.contains(&addr))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }
}

/// A JSON list of CIDRs, each in its canonical form.
impl serde::Serialize for AllowedNetworks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(IpNet::to_string))
    }
}

/// `net` with its host bits cleared, an IPv4-mapped IPv6 network as IPv4.
fn canonical(net: IpNet) -> IpNet {
    let net = net.trunc();
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// Checks an issuance limit: 1 to [`MAX_TOKENS_PER_MINUTE`].
pub fn check_tokens_per_minute(limit: u32) -> Result<u32, KeyError> {
    if (1..=MAX_TOKENS_PER_MINUTE).contains(&limit) {
        Ok(limit)
    } else {
        Err(KeyError::TokenLimitOutOfRange)
    }
}

/// Parses an issuance limit typed on the command line or in the console:
/// a number of tokens per minute, or `none` (also `unlimited`, or nothing)
/// for no limit.
pub fn parse_tokens_per_minute(text: &str) -> Result<Option<u32>, KeyError> {
    let text = text.trim();
    if text.is_empty()
        || text.eq_ignore_ascii_case("none")
        || text.eq_ignore_ascii_case("unlimited")
    {
        return Ok(None);
    }
    let limit = text
        .parse::<u32>()
        .map_err(|_| KeyError::TokenLimitNotANumber)?;
    check_tokens_per_minute(limit).map(Some)
}

/// A key's envelope as given at creation or in a change; `None` fields of a
/// change stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub allowed_networks: AllowedNetworks,
    pub max_tokens_per_minute: Option<u32>,
}

/// A change to a key's envelope: each part given is replaced, each part
/// left out stays.
#[derive(Debug, Clone, Default)]
pub struct EnvelopeChange {
    pub allowed_networks: Option<AllowedNetworks>,
    pub max_tokens_per_minute: Option<Option<u32>>,
}

impl EnvelopeChange {
    pub fn is_empty(&self) -> bool {
        self.allowed_networks.is_none() && self.max_tokens_per_minute.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn parses_what_people_type_into_canonical_networks() {
        let nets =
            AllowedNetworks::parse("10.1.2.3/24, 192.168.0.7\n2001:db8::1/32 10.1.2.0/24").unwrap();
        assert_eq!(
            nets.to_vec(),
            ["10.1.2.0/24", "192.168.0.7/32", "2001:db8::/32"]
        );
        assert_eq!(
            nets.to_stored().as_deref(),
            Some("10.1.2.0/24 192.168.0.7/32 2001:db8::/32")
        );
        assert_eq!(
            AllowedNetworks::from_stored(&nets.to_stored().unwrap()),
            nets
        );
        assert!(AllowedNetworks::parse("any").unwrap().is_empty());
        assert!(AllowedNetworks::parse("  ").unwrap().is_empty());
        assert_eq!(AllowedNetworks::parse("").unwrap().to_stored(), None);
        let mapped = AllowedNetworks::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped.to_vec(), ["10.0.0.0/8"]);
    }

    #[test]
    fn refuses_what_is_not_a_network_without_echoing_secrets() {
        for bad in [
            "10.0.0.0/33",
            "example.com",
            "10.0.0",
            "any 10.0.0.0/8",
            "kgs_abc",
        ] {
            let error = AllowedNetworks::parse(bad).unwrap_err().to_string();
            assert!(error.contains("not an IP address"), "{bad}: {error}");
            assert!(!error.contains("kgs_abc"), "{error}");
        }
        let many = (0..=MAX_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect::<Vec<_>>();
        assert!(AllowedNetworks::from_items(many.iter().map(String::as_str)).is_err());
    }

    #[test]
    fn allows_addresses_inside_and_only_those() {
        let nets = AllowedNetworks::parse("127.0.0.1, 10.0.0.0/8, 2001:db8::/32").unwrap();
        assert!(nets.allows(ip("127.0.0.1")));
        assert!(!nets.allows(ip("127.0.0.2")));
        assert!(nets.allows(ip("10.200.3.4")));
        assert!(
            nets.allows(ip("::ffff:10.1.1.1")),
            "IPv4-mapped IPv6 counts as IPv4"
        );
        assert!(nets.allows(ip("2001:db8::5")));
        assert!(!nets.allows(ip("2001:db9::5")));
        assert!(!nets.allows(None));
        assert!(AllowedNetworks::default().allows(None));
        assert!(AllowedNetworks::default().allows(ip("203.0.113.9")));
    }

    #[test]
    fn reads_issuance_limits() {
        assert_eq!(parse_tokens_per_minute("120").unwrap(), Some(120));
        assert_eq!(parse_tokens_per_minute("none").unwrap(), None);
        assert_eq!(parse_tokens_per_minute("Unlimited").unwrap(), None);
        assert_eq!(parse_tokens_per_minute("").unwrap(), None);
        for bad in ["0", "-1", "1.5", "many", "1000001"] {
            assert!(parse_tokens_per_minute(bad).is_err(), "{bad}");
        }
    }
}
