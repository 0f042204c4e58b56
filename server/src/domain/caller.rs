//! Who is calling: the address and browser of a request, as the phone's
//! "who is asking" screen, the session list and the audit trail show them.
//! (How the address is read from a request, proxies and all, is the HTTP
//! layer's business.)

use std::net::IpAddr;

/// Longest User-Agent kept; the rest is dropped.
const MAX_USER_AGENT: usize = 512;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    pub user_agent: String,
    /// Who acts, when it is not the account itself: an administrator
    /// (`admin:alice`), an admin API token (`token:ci (id)`) or the
    /// operator's shell; the audit trail records it with every event.
    pub actor: Option<String>,
}

impl Caller {
    pub fn new(ip: Option<IpAddr>, user_agent: &str) -> Self {
        Self {
            ip,
            user_agent: truncate(user_agent, MAX_USER_AGENT),
            actor: None,
        }
    }

    /// The same caller, acting as `actor` (see [`Self::actor`]).
    pub fn acting_as(&self, actor: &str) -> Self {
        Self {
            actor: Some(truncate(actor, MAX_USER_AGENT)),
            ..self.clone()
        }
    }

    pub fn ip_string(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Who is asking, as the phone shows it: what an approval with a passkey
/// signs is made from this same value, so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownRequester {
    pub browser: String,
    pub os: String,
    /// The address, or empty when unknown.
    pub ip: String,
}

impl ShownRequester {
    pub fn of(user_agent: &str, ip: Option<IpAddr>) -> Self {
        let (browser, os) = describe_user_agent(user_agent);
        Self {
            browser,
            os,
            ip: ip.map(|ip| ip.to_string()).unwrap_or_default(),
        }
    }
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
    fn user_agents_are_named_and_bounded() {
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
        assert_eq!(Caller::new(None, &"x".repeat(600)).user_agent.len(), 512);
    }
}
