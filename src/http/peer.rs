//! The address of the client of a request: the TCP peer, or behind
//! reverse proxies the operator trusts, the address they forwarded. What the
//! failure throttle counts against, the audit log records and the
//! `/metrics` allow-list checks.
//!
//! A trusted proxy's `X-Forwarded-For` is read entry by entry: an address,
//! `IPv4:PORT` or `[IPv6]:PORT` (a proxy that appends the port it saw). Any
//! other entry — `unknown`, garbage, an empty one, a bracketed IPv4 — makes
//! the whole header unreadable ([`UnreadableForwarding`]), and the request is
//! refused before any handler runs: the client is never taken to be the
//! proxy itself, which would let every client through the proxy's allowed
//! networks and share one throttle counter.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::HeaderValue;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};

/// The header a trusted proxy names the client in.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A trusted proxy's `X-Forwarded-For` holds an entry that is not an
/// address: the client cannot be known, and the request is a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("X-Forwarded-For holds an entry that is not an IP address")]
pub struct UnreadableForwarding;

/// `KEYGATE_TRUSTED_PROXIES`, as app data for
/// [`refuse_unreadable_forwarding`]; without it no peer is trusted.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

/// Middleware (through `actix_web::middleware::from_fn`): a request from a
/// trusted proxy whose `X-Forwarded-For` cannot be read is answered with
/// `refusal` (a 400 in the surface's own format) and goes no further; every
/// other request passes unchanged.
pub async fn refuse_unreadable_forwarding<B: MessageBody + 'static>(
    request: ServiceRequest,
    next: Next<B>,
    refusal: fn(&HttpRequest, UnreadableForwarding) -> HttpResponse,
) -> Result<ServiceResponse, actix_web::Error> {
    let trusted = request
        .app_data::<web::Data<TrustedProxies>>()
        .map_or(&[][..], |proxies| &proxies.0[..]);
    if let Err(unreadable) = forwarded_client_ip(request.request(), trusted) {
        tracing::info!(%unreadable, "request refused");
        let answer = refusal(request.request(), unreadable);
        return Ok(request.into_response(answer));
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// The address failures are counted against: the TCP peer, or, when the
/// peer is a trusted reverse proxy, the nearest address in `X-Forwarded-For`
/// that is not one of the trusted proxies (the one the last trusted hop saw).
/// Untrusted peers cannot pick their own address by sending the header.
pub fn client_address(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> String {
    client_ip(req, trusted).map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

/// [`client_address`] as an address; `None` when the peer is unknown or its
/// forwarding unreadable (such a request is refused by
/// [`refuse_unreadable_forwarding`] before it reaches a handler).
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    forwarded_client_ip(req, trusted).ok().flatten()
}

/// The client's address as [`client_ip`] finds it, or why a trusted proxy's
/// `X-Forwarded-For` cannot be read; `Ok(None)` when the peer is unknown.
pub fn forwarded_client_ip(
    req: &HttpRequest,
    trusted: &[ipnet::IpNet],
) -> Result<Option<IpAddr>, UnreadableForwarding> {
    let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
        return Ok(None);
    };
    forwarded_client(peer, req.headers().get_all(X_FORWARDED_FOR), trusted).map(Some)
}

fn forwarded_client<'a>(
    peer: IpAddr,
    forwarded: impl Iterator<Item = &'a HeaderValue>,
    trusted: &[ipnet::IpNet],
) -> Result<IpAddr, UnreadableForwarding> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Ok(peer);
    }
    // Every entry must be an address, the ones left of the client too.
    let mut hops = Vec::new();
    for value in forwarded {
        let value = value.to_str().map_err(|_| UnreadableForwarding)?;
        for entry in value.split(',') {
            hops.push(forwarded_entry(entry.trim()).ok_or(UnreadableForwarding)?);
        }
    }
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    Ok(client)
}

/// One `X-Forwarded-For` entry: `IP`, `IPv4:PORT`, `[IPv6]` or
/// `[IPv6]:PORT`, read as the IP (an IPv4-mapped IPv6 address as the IPv4
/// address it is). `None` for anything else, brackets around an IPv4 address
/// (`[10.1.2.3]`, `[::ffff:10.1.2.3]`) included.
fn forwarded_entry(entry: &str) -> Option<IpAddr> {
    let ip = match entry.strip_prefix('[') {
        Some(inside) => {
            let v6 = match entry.parse::<SocketAddr>() {
                Ok(SocketAddr::V6(socket)) => *socket.ip(),
                Ok(SocketAddr::V4(_)) => return None,
                Err(_) => inside.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?,
            };
            if v6.to_ipv4_mapped().is_some() {
                return None;
            }
            IpAddr::V6(v6)
        }
        None => match entry.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => IpAddr::V4(*entry.parse::<std::net::SocketAddrV4>().ok()?.ip()),
        },
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(peer: &str, header: &[&str], trusted: &[&str]) -> Result<String, UnreadableForwarding> {
        let values: Vec<HeaderValue> = header
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        forwarded_client(peer.parse().unwrap(), values.iter(), &trusted).map(|ip| ip.to_string())
    }

    fn client(peer: &str, header: &[&str], trusted: &[&str]) -> String {
        read(peer, header, trusted).unwrap()
    }

    #[test]
    fn untrusted_peers_cannot_name_their_address() {
        assert_eq!(
            client("198.51.100.7", &["203.0.113.5"], &[]),
            "198.51.100.7"
        );
        assert_eq!(
            client("198.51.100.7", &["203.0.113.5"], &["10.0.0.0/8"]),
            "198.51.100.7"
        );
        // Nor make their request fail: from them the header is not read.
        assert_eq!(
            client("198.51.100.7", &["garbage"], &["10.0.0.0/8"]),
            "198.51.100.7"
        );
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(
            client("10.0.0.2", &["203.0.113.5"], &trusted),
            "203.0.113.5"
        );
        // The client put a fake entry first; the proxy appended the real one.
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1, 203.0.113.5, 10.0.0.9"], &trusted),
            "203.0.113.5"
        );
        assert_eq!(
            client("10.0.0.2", &["1.1.1.1", "203.0.113.5"], &trusted),
            "203.0.113.5"
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.2", &[], &trusted), "10.0.0.2");
        // Only trusted hops: the farthest of them.
        assert_eq!(
            client("10.0.0.2", &["10.0.0.7, 10.0.0.9"], &trusted),
            "10.0.0.7"
        );
    }

    #[test]
    fn entries_with_a_port_are_read_as_their_address() {
        let trusted = ["127.0.0.1/32"];
        for (entry, ip) in [
            ("203.0.113.9:4444", "203.0.113.9"),
            ("[2001:db8::7]:4444", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("2001:db8::7", "2001:db8::7"),
            (" 203.0.113.9 ", "203.0.113.9"),
            // An IPv4-mapped address is the IPv4 address it maps.
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            assert_eq!(client("127.0.0.1", &[entry], &trusted), ip, "{entry}");
        }
        assert_eq!(
            client("::ffff:127.0.0.1", &["198.51.100.4:80"], &trusted),
            "198.51.100.4"
        );
        assert_eq!(
            client("127.0.0.1", &["198.51.100.4:80, 127.0.0.1:9000"], &trusted),
            "198.51.100.4"
        );
    }

    #[test]
    fn an_entry_that_is_not_an_address_is_unreadable_never_the_proxy() {
        let trusted = ["127.0.0.1/32"];
        for header in [
            "garbage",
            "unknown",
            "",
            " ",
            "203.0.113.9,",
            ",203.0.113.9",
            "203.0.113.9,,127.0.0.1",
            "[::ffff:10.1.2.3]",
            "[::ffff:10.1.2.3]:80",
            "[10.1.2.3]",
            "[10.1.2.3]:80",
            "203.0.113.9:",
            "203.0.113.9:99999",
            "203.0.113.9:port",
            "2001:db8::7:4444:",
            "[2001:db8::7",
            "2001:db8::7]:80",
            "203.0.113.9 198.51.100.4",
            "_hidden",
            // A client's garbage left of the real address counts too.
            "garbage, 203.0.113.9",
        ] {
            assert_eq!(
                read("127.0.0.1", &[header], &trusted),
                Err(UnreadableForwarding),
                "{header:?}"
            );
        }
        assert_eq!(
            read("127.0.0.1", &["203.0.113.9", "unknown"], &trusted),
            Err(UnreadableForwarding)
        );
        let not_text = HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert_eq!(
            forwarded_client(
                "127.0.0.1".parse().unwrap(),
                std::iter::once(&not_text),
                &trusted
            ),
            Err(UnreadableForwarding)
        );
    }

    proptest! {
        /// Whatever a trusted proxy forwards, the answer is an address it
        /// named, or a refusal: never the proxy's own address unless it
        /// named itself.
        #[test]
        fn the_client_is_a_named_address_or_a_refusal(
            entries in proptest::collection::vec(
                prop_oneof![
                    any::<IpAddr>().prop_map(|ip| ip.to_string()),
                    any::<SocketAddr>().prop_map(|socket| socket.to_string()),
                    "[ -+--~]{0,12}",
                ],
                0..4,
            )
        ) {
            let header = entries.join(",");
            let value = HeaderValue::from_str(&header).unwrap();
            let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
            let peer: IpAddr = "127.0.0.1".parse().unwrap();
            let named: Option<Vec<IpAddr>> = header
                .split(',')
                .map(|entry| forwarded_entry(entry.trim()))
                .collect();
            match forwarded_client(peer, std::iter::once(&value), &trusted) {
                Ok(ip) => prop_assert!(named.is_some_and(|named| named.contains(&ip))),
                Err(UnreadableForwarding) => prop_assert!(named.is_none()),
            }
        }

        #[test]
        fn every_address_with_or_without_a_port_reads_as_itself(
            ip in any::<IpAddr>(),
            port in any::<u16>(),
        ) {
            let ip = ip.to_canonical();
            let with_port = SocketAddr::new(ip, port).to_string();
            prop_assert_eq!(forwarded_entry(&ip.to_string()), Some(ip));
            prop_assert_eq!(forwarded_entry(&with_port), Some(ip));
        }
    }
}
