//! What handlers take from a request: JSON bodies, queries and paths with
//! rejections turned into our JSON errors (axum's own are plain text); the
//! login id; the caller (seen through trusted proxies); the signed-in
//! session; the desktop's bind secrets.

use std::net::{IpAddr, SocketAddr};

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
    let ip = peer.map(|peer| client_ip(peer, &parts.headers, trusted_proxies));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
