//! The address of the client of a request: the TCP peer, or behind
//! reverse proxies the operator trusts, the address they forwarded. What the
//! failure throttle counts against, the audit log records and the
//! `/metrics` allow-list checks.

use std::net::IpAddr;

use actix_web::HttpRequest;

/// The address failures are counted against: the TCP peer, or, when the
/// peer is a trusted reverse proxy, the nearest address in `X-Forwarded-For`
/// that is not one of the trusted proxies (the one the last trusted hop saw).
/// Untrusted peers cannot pick their own address by sending the header.
pub fn client_address(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> String {
    client_ip(req, trusted).map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

/// [`client_address`] as an address; `None` when the peer is unknown.
pub fn client_ip(req: &HttpRequest, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    Some(forwarded_client(
        peer,
        req.headers().get_all("x-forwarded-for"),
        trusted,
    ))
}

fn forwarded_client<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a actix_web::http::header::HeaderValue>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            // A malformed entry ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn client(peer: &str, header: &[&str], trusted: &[&str]) -> String {
        let values: Vec<HeaderValue> = header
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        forwarded_client(peer.parse().unwrap(), values.iter(), &trusted).to_string()
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
        // No header, or nothing usable: the proxy itself.
        assert_eq!(client("10.0.0.2", &[], &trusted), "10.0.0.2");
        assert_eq!(client("10.0.0.2", &["garbage"], &trusted), "10.0.0.2");
    }
}
