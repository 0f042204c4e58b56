//! What handlers take from a request: JSON bodies, queries and paths with
//! rejections turned into our JSON errors (axum's own are plain text); the
//! login id; the caller (seen through trusted proxies); the signed-in
//! session; the desktop's bind secrets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request},
    http::{header, request::Parts, HeaderMap, HeaderName, StatusCode},
    Json,
};
use serde::de::DeserializeOwned;

use super::{cookies, error::ApiError, state::AppState};
use crate::{
    domain::{attempt::LoginId, caller::Caller, secret::Secret},
    services::accounts::CurrentSession,
};

pub(crate) struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "The request body must be JSON of the documented shape: {}",
                rejection.body_text()
            ))),
        }
    }
}

pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "Invalid query string: {}",
                rejection.body_text()
            ))),
        }
    }
}

pub(crate) struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "Invalid path: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The `{id}` path segment, validated before any handler runs.
pub(crate) struct LoginIdPath(pub LoginId);

impl<S: Send + Sync> FromRequestParts<S> for LoginIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidLoginId)?;
        raw.parse()
            .map(LoginIdPath)
            .map_err(|_| ApiError::InvalidLoginId)
    }
}

/// The session token a request presents (cookie or bearer), unchecked:
/// for handlers that check it together with their rate limits
/// ([`LoginService::phone`](crate::services::logins::LoginService::phone)).
pub(crate) struct SessionToken(pub Option<Secret>);

impl FromRequestParts<AppState> for SessionToken {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(cookies::presented_token(
            &parts.headers,
            state.public_url.is_https(),
        )))
    }
}

/// The bind secrets a desktop's request carries.
pub(crate) struct BindSecrets(pub Vec<Secret>);

impl FromRequestParts<AppState> for BindSecrets {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(cookies::bind_secrets(
            &parts.headers,
            state.public_url.is_https(),
        )))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(caller(parts, &state.trusted_proxies))
    }
}

/// The connection's peer address (an IPv4-mapped IPv6 one as IPv4).
pub(crate) fn peer_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The caller as seen through `trusted_proxies` (empty: the peer itself).
pub(crate) fn caller(parts: &Parts, trusted_proxies: &[IpAddr]) -> Caller {
    let peer = peer_ip(&parts.extensions);
    let ip = peer.and_then(|peer| client_ip(peer, &parts.headers, trusted_proxies));
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    Caller::new(ip, user_agent)
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        current_session(state, &parts.headers)
            .await?
            .ok_or(ApiError::NotSignedIn)
    }
}

/// The request's working session, if it has one.
pub(crate) async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<CurrentSession>, ApiError> {
    let Some(token) = cookies::presented_token(headers, state.public_url.is_https()) else {
        return Ok(None);
    };
    Ok(state.services.accounts.current(&token).await?)
}

/// `X-Forwarded-For`, the de facto header most proxies write.
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address, read from the peer back: the first hop of the
/// forwarding header that is not a trusted proxy (or the farthest hop, when
/// every hop is one). Only what trusted proxies wrote is ever read: the
/// entries before the first untrusted hop are its sender's own words, and a
/// client that sends `X-Forwarded-For: 198.51.100.7, x` to a proxy that
/// appends (nginx's `$proxy_add_x_forwarded_for`) is still its real address.
///
/// `None`, an unknown client, when the walk meets a hop a trusted proxy
/// wrote that names no address (`unknown`, an obfuscated `_hidden`, an empty
/// entry, garbage) — never skipped, as what lies beyond it is anybody's —
/// or when a request carries both `Forwarded` and `X-Forwarded-For` and
/// they disagree (a proxy writes one and passes a client's other on). An
/// unknown client shares one rate-limit allowance with every other unknown
/// one and never looks like the phone's network.
fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    if !is_trusted(trusted, peer) {
        return Some(peer);
    }
    let forwarded = hops(headers, &header::FORWARDED, forwarded_for);
    let x_forwarded_for = hops(headers, &X_FORWARDED_FOR, address);
    match (forwarded, x_forwarded_for) {
        (None, None) => Some(peer),
        (Some(hops), None) | (None, Some(hops)) => walk_back(peer, hops, trusted),
        (Some(forwarded), Some(x_forwarded_for)) => {
            let (a, b) = (
                walk_back(peer, forwarded, trusted),
                walk_back(peer, x_forwarded_for, trusted),
            );
            if a != b {
                tracing::warn!(
                    %peer,
                    "Forwarded and X-Forwarded-For name different clients: the client is unknown \
                     (a trusted proxy must set one of them and remove the other)"
                );
                return None;
            }
            a
        }
    }
}

/// Whether `ip` is one of the trusted proxies (an IPv4-mapped IPv6
/// address on either side counts as the IPv4 one).
fn is_trusted(trusted: &[IpAddr], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    trusted.iter().any(|proxy| proxy.to_canonical() == ip)
}

/// See [`client_ip`]: `hops` nearest first, after the trusted `peer`.
fn walk_back(
    peer: IpAddr,
    hops: impl Iterator<Item = Option<IpAddr>>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let mut client = peer;
    for hop in hops {
        let Some(ip) = hop else {
            tracing::debug!(proxy = %client, "a trusted proxy forwarded for an unknown client");
            return None;
        };
        client = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    Some(client)
}

/// The hops header `name` lists, nearest first (its last line's last entry
/// first), each read by `read`; `None` when the request has no such header
/// (or only blank ones). Entries are split at every comma, byte by byte:
/// nothing a client writes (a quote, bytes that are not ASCII) can merge
/// with or hide the entries proxies append after it.
fn hops<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    read: fn(&[u8]) -> Option<IpAddr>,
) -> Option<impl Iterator<Item = Option<IpAddr>> + 'a> {
    let lines = headers.get_all(name);
    if lines
        .iter()
        .all(|line| line.as_bytes().trim_ascii().is_empty())
    {
        return None;
    }
    Some(
        lines
            .into_iter()
            .rev()
            .flat_map(|line| line.as_bytes().rsplit(|b| *b == b','))
            .map(read),
    )
}

/// The address of a `Forwarded` element's `for=` (RFC 7239), quoted or
/// not; `None` for an element without one, `for=unknown` or an obfuscated
/// identifier.
fn forwarded_for(element: &[u8]) -> Option<IpAddr> {
    let value = element.split(|b| *b == b';').find_map(|pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        let (key, value) = pair.split_at(eq);
        key.trim_ascii()
            .eq_ignore_ascii_case(b"for")
            .then_some(&value[1..])
    })?;
    match value.trim_ascii() {
        [b'"', quoted @ .., b'"'] => address(quoted),
        token => address(token),
    }
}

/// `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:4711` (a port may be obfuscated, `:_p1`); an IPv4-mapped
/// IPv6 address as the IPv4 one. Anything else is `None`.
fn address(entry: &[u8]) -> Option<IpAddr> {
    let entry = std::str::from_utf8(entry.trim_ascii()).ok()?;
    let port_ok = |port: &str| {
        !port.is_empty()
            && port
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let ip = if let Some(bracketed) = entry.strip_prefix('[') {
        let (ip, rest) = bracketed.split_once(']')?;
        let port_fine = rest.is_empty() || rest.strip_prefix(':').is_some_and(port_ok);
        port_fine
            .then(|| ip.parse::<Ipv6Addr>().ok())
            .flatten()?
            .into()
    } else if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else {
        let (ip, port) = entry.rsplit_once(':')?;
        port_ok(port)
            .then(|| ip.parse::<Ipv4Addr>().ok())
            .flatten()?
            .into()
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    const PROXY: &str = "10.0.0.1";

    /// The client as qrlogin behind one trusted proxy at 10.0.0.1 sees it.
    fn behind_proxy(pairs: &[(&str, &str)]) -> Option<IpAddr> {
        client_ip(ip(PROXY), &headers(pairs), &[ip(PROXY)])
    }

    #[test]
    fn proxy_headers_count_only_from_trusted_proxies() {
        let proxy = ip(PROXY);
        let map = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]);
        // Not trusted: the header is the client's own word, ignored.
        assert_eq!(client_ip(proxy, &map, &[]), Some(proxy));
        // Trusted: the nearest untrusted hop; a forged left part is skipped.
        assert_eq!(client_ip(proxy, &map, &[proxy]), Some(ip("203.0.113.9")));
        // A trusted proxy's own request (no header): the proxy.
        assert_eq!(behind_proxy(&[]), Some(proxy));
        assert_eq!(behind_proxy(&[("x-forwarded-for", " ")]), Some(proxy));
    }

    #[test]
    fn garbage_before_the_real_hop_is_never_believed() {
        // nginx appends the real address to what the client sent.
        let forged = [("x-forwarded-for", "198.51.100.7, x, 203.0.113.9")];
        assert_eq!(behind_proxy(&forged), Some(ip("203.0.113.9")));
        let forged = [("x-forwarded-for", "198.51.100.7, \"x, 203.0.113.9")];
        assert_eq!(behind_proxy(&forged), Some(ip("203.0.113.9")));
        // Bytes that are not ASCII in the client's part spoil nothing after it.
        let mut map = HeaderMap::new();
        map.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.7, \xff\xfe, 203.0.113.9").unwrap(),
        );
        assert_eq!(
            client_ip(ip(PROXY), &map, &[ip(PROXY)]),
            Some(ip("203.0.113.9"))
        );
        // Garbage a trusted proxy vouches for: unknown, not what lies beyond.
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "198.51.100.7, x")]),
            None
        );
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "198.51.100.7, x, 10.0.0.1")]),
            None
        );
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "198.51.100.7, 1.2.3.4:x:y")]),
            None
        );
    }

    #[test]
    fn an_empty_hop_is_unknown_not_skipped() {
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "198.51.100.7,,203.0.113.9")]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "198.51.100.7,,10.0.0.1")]),
            None
        );
        assert_eq!(behind_proxy(&[("x-forwarded-for", "198.51.100.7, ")]), None);
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_ones() {
        // The proxy connects over IPv6 as ::ffff:10.0.0.1 (peer_ip
        // canonicalises it), or is listed that way.
        let map = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &map, &[ip(PROXY)]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(ip(PROXY), &map, &[ip("::ffff:10.0.0.1")]),
            Some(ip("203.0.113.9"))
        );
        // A hop written as ::ffff:x is x: a trusted proxy so written is
        // walked past, and a client so written is its IPv4 address.
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "203.0.113.9, ::ffff:10.0.0.1")]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "6.6.6.6, [::ffff:203.0.113.9]:80")]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn forwarded_is_read_with_quotes_ports_and_obfuscation() {
        let forwarded = |value| behind_proxy(&[("forwarded", value)]);
        assert_eq!(
            forwarded("for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            forwarded("for=6.6.6.6, For=\"192.0.2.43:47011\";by=10.0.0.1"),
            Some(ip("192.0.2.43"))
        );
        assert_eq!(
            forwarded("for=6.6.6.6, proto=https;for=\"[2001:db8::1]:_p1\""),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(
            forwarded("for=6.6.6.6, for=\"[::ffff:192.0.2.43]\""),
            Some(ip("192.0.2.43"))
        );
        // `unknown`, obfuscated, quoted oddly or no `for` at all: unknown,
        // never the forged hop before it.
        assert_eq!(forwarded("for=unknown"), None);
        assert_eq!(forwarded("for=6.6.6.6, for=unknown"), None);
        assert_eq!(forwarded("for=6.6.6.6, for=_hidden"), None);
        assert_eq!(forwarded("for=6.6.6.6, for=\"_hidden:_p\""), None);
        assert_eq!(forwarded("for=6.6.6.6, for=\"192.0.2.43"), None);
        assert_eq!(forwarded("for=6.6.6.6, proto=https"), None);
        assert_eq!(
            forwarded("for=6.6.6.6,,for=192.0.2.43"),
            Some(ip("192.0.2.43"))
        );
        // A trusted hop is walked past, then the first untrusted one counts.
        assert_eq!(
            forwarded("for=6.6.6.6, for=192.0.2.43, for=10.0.0.1"),
            Some(ip("192.0.2.43"))
        );
    }

    #[test]
    fn several_header_lines_read_as_one_list_in_order() {
        // A client's line first, the proxy's appended after it.
        assert_eq!(
            behind_proxy(&[
                ("x-forwarded-for", "198.51.100.7, x"),
                ("x-forwarded-for", "203.0.113.9"),
            ]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            behind_proxy(&[
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-for", "10.0.0.1"),
            ]),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            behind_proxy(&[("x-forwarded-for", "198.51.100.7"), ("x-forwarded-for", "")]),
            None
        );
        assert_eq!(
            behind_proxy(&[
                ("forwarded", "for=198.51.100.7"),
                ("forwarded", "for=203.0.113.9"),
            ]),
            Some(ip("203.0.113.9"))
        );
    }

    #[test]
    fn forwarded_and_x_forwarded_for_must_agree() {
        // A proxy that sets both the same way: believed.
        assert_eq!(
            behind_proxy(&[
                ("forwarded", "for=203.0.113.9"),
                ("x-forwarded-for", "203.0.113.9"),
            ]),
            Some(ip("203.0.113.9"))
        );
        // One set by the proxy, the other the client's own: unknown.
        assert_eq!(
            behind_proxy(&[
                ("forwarded", "for=198.51.100.7"),
                ("x-forwarded-for", "203.0.113.9"),
            ]),
            None
        );
    }

    #[test]
    fn addresses_are_read_in_every_documented_form() {
        assert_eq!(address(b" 192.0.2.1 "), Some(ip("192.0.2.1")));
        assert_eq!(address(b"192.0.2.1:80"), Some(ip("192.0.2.1")));
        assert_eq!(address(b"2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(address(b"[2001:db8::1]"), Some(ip("2001:db8::1")));
        assert_eq!(address(b"[2001:db8::1]:4711"), Some(ip("2001:db8::1")));
        assert_eq!(address(b"::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        for bad in [
            &b""[..],
            b"unknown",
            b"_hidden",
            b"[2001:db8::1",
            b"[2001:db8::1]x",
            b"[192.0.2.1]",
            b"192.0.2.1:",
            b"fe80::1%eth0",
            b"example.com",
            b"\xff",
        ] {
            assert_eq!(address(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }
}
