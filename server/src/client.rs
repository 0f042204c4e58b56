//! Who is calling: address and browser, for the phone's "who is asking"
//! screen and for the session list.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};

/// Longest User-Agent kept; the rest is dropped.
const MAX_USER_AGENT: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientContext {
    /// The peer address (no proxy headers are trusted by default).
    pub ip: Option<IpAddr>,
    pub user_agent: String,
}

impl ClientContext {
    pub fn from_parts(parts: &Parts) -> Self {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_canonical());
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

impl<S: Send + Sync> FromRequestParts<S> for ClientContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_parts(parts))
    }
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
