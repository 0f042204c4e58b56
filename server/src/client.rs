//! Who is calling: address and browser, for the phone's "who is asking"
//! screen and for the session list.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts, HeaderMap, HeaderName},
};

use crate::AppState;

/// Longest User-Agent kept; the rest is dropped.
const MAX_USER_AGENT: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientContext {
    /// The peer address (no proxy headers are trusted by default).
    pub ip: Option<IpAddr>,
    pub user_agent: String,
}

impl ClientContext {
    /// The caller as seen through `trusted_proxies` (empty: the peer itself).
    pub fn from_parts(parts: &Parts, trusted_proxies: &[IpAddr]) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
        let ip = peer.map(|peer| client_ip(peer, &parts.headers, trusted_proxies));
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| truncate(ua, MAX_USER_AGENT))
            .unwrap_or_default();
        Self { ip, user_agent }
    }

    pub fn ip_string(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

impl FromRequestParts<AppState> for ClientContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts, &state.trusted_proxies))
    }
}

/// The hops a request passed, nearest last: from `Forwarded` if present,
/// else `X-Forwarded-For`. Unparseable entries end the list.
fn forwarded_chain(headers: &HeaderMap) -> Vec<IpAddr> {
    let joined = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let forwarded = joined(header::FORWARDED);
    let entries: Vec<String> = if !forwarded.is_empty() {
        forwarded
            .split(',')
            .filter_map(|hop| {
                hop.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.eq_ignore_ascii_case("for")
                        .then(|| value.trim_matches('"').to_owned())
                })
            })
            .collect()
    } else {
        joined(HeaderName::from_static("x-forwarded-for"))
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    entries
        .iter()
        .map(|entry| parse_hop(entry))
        .take_while(Option::is_some)
        .flatten()
        .collect()
}

/// `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]:4711` or `2001:db8::1`.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|ip| ip.parse().ok())
}

/// The first address, walking back from the peer, that is not a trusted proxy.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_chain(headers).into_iter().rev() {
        client = hop.to_canonical();
        if !trusted.contains(&client) {
            break;
        }
    }
    client
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Browser and OS names from a User-Agent, e.g. ("Chrome", "Linux").
pub fn describe_user_agent(user_agent: &str) -> (String, String) {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(result) => {
            let known = |s: &str| {
                if s.is_empty() || s == "UNKNOWN" {
                    "Unknown".to_owned()
                } else {
                    s.to_owned()
                }
            };
            (known(result.name), known(result.os))
        }
        None => ("Unknown".to_owned(), "Unknown".to_owned()),
    }
}

/// Whether two addresses look like one network: the same address, the same
/// IPv4 /24 or the same IPv6 /64.
pub fn same_network(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(IpAddr::V4(a)), Some(IpAddr::V4(b))) => a.octets()[..3] == b.octets()[..3],
        (Some(IpAddr::V6(a)), Some(IpAddr::V6(b))) => a.segments()[..4] == b.segments()[..4],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_compare_by_prefix() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(same_network(ip("192.168.1.10"), ip("192.168.1.200")));
        assert!(!same_network(ip("192.168.1.10"), ip("192.168.2.10")));
        assert!(same_network(
            ip("2001:db8:1:2::1"),
            ip("2001:db8:1:2:ffff::9")
        ));
        assert!(!same_network(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1")));
        assert!(!same_network(ip("10.0.0.1"), ip("::1")));
        assert!(!same_network(None, None));
    }

    #[test]
    fn proxy_headers_count_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("10.0.0.1");
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        // Not trusted: the header is the client's own word, ignored.
        assert_eq!(client_ip(proxy, &headers, &[]), proxy);
        // Trusted: the nearest untrusted hop; a forged left part is skipped.
        assert_eq!(client_ip(proxy, &headers, &[proxy]), ip("203.0.113.9"));
        headers.insert(
            header::FORWARDED,
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""
                .parse()
                .unwrap(),
        );
        assert_eq!(client_ip(proxy, &headers, &[proxy]), ip("2001:db8::1"));
        headers.insert(header::FORWARDED, "for=unknown".parse().unwrap());
        assert_eq!(client_ip(proxy, &headers, &[proxy]), proxy);
    }

    #[test]
    fn user_agents_are_named() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(
            describe_user_agent(chrome),
            ("Chrome".to_owned(), "Linux".to_owned())
        );
        assert_eq!(
            describe_user_agent(""),
            ("Unknown".to_owned(), "Unknown".to_owned())
        );
        assert_eq!(truncate("héllo", 2), "h");
    }
}
