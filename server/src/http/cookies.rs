//! The cookies: the bind cookie that ties an attempt to the desktop
//! browser that made it, the session cookie of a signed-in browser, and
//! the claim of a phone that opened a phone link.
//! (Apps send the session token as `Authorization: Bearer` instead.)

use axum::http::{header, HeaderMap, HeaderValue};
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::domain::{account::SESSION_IDLE_LIMIT_MS, attempt::Ttls, secret::Secret};

/// Name of the bind cookie; the `__Secure-` prefix makes browsers refuse it
/// over plain http. (`__Host-` would require `Path=/`, and the bind cookie is
/// deliberately scoped to its own attempt's path.)
pub(crate) fn bind_cookie_name(https: bool) -> &'static str {
    if https {
        "__Secure-qrlogin_bind"
    } else {
        "qrlogin_bind"
    }
}

/// The bind cookie for the attempt at `path`: as long-lived as the attempt
/// can be, sent only to that attempt's URLs, never to other sites.
pub(crate) fn bind_cookie(secret: &Secret, path: &str, ttls: &Ttls, https: bool) -> HeaderValue {
    let cookie = Cookie::build((bind_cookie_name(https), secret.encode()))
        .path(path.to_owned())
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(ttls.longest_life().as_secs() as i64))
        .build();
    header_value(&cookie)
}

/// Every bind secret the request carries (a browser may hold several, from
/// other tabs' attempts on overlapping paths).
pub(crate) fn bind_secrets(headers: &HeaderMap, https: bool) -> Vec<Secret> {
    cookie_values(headers, bind_cookie_name(https))
        .filter_map(|raw| Secret::decode(&raw))
        .collect()
}

/// `__Host-` pins the cookie to this exact host and path `/` over https.
pub(crate) fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-qrlogin_session"
    } else {
        "qrlogin_session"
    }
}

pub(crate) fn session_cookie(token: &Secret, https: bool) -> HeaderValue {
    let max_age = time::Duration::milliseconds(SESSION_IDLE_LIMIT_MS as i64);
    session_cookie_with(token.encode(), max_age, https)
}

pub(crate) fn clear_session_cookie(https: bool) -> HeaderValue {
    session_cookie_with(String::new(), time::Duration::ZERO, https)
}

fn session_cookie_with(value: String, max_age: time::Duration, https: bool) -> HeaderValue {
    let cookie = Cookie::build((session_cookie_name(https), value))
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Lax)
        .max_age(max_age)
        .build();
    header_value(&cookie)
}

/// The claim cookie of a phone that opened a phone link: it alone may go
/// on with that link (five minutes, as the link).
pub(crate) fn link_claim_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-qrlogin_link"
    } else {
        "qrlogin_link"
    }
}

pub(crate) fn link_claim_cookie(secret: &Secret, https: bool) -> HeaderValue {
    let cookie = Cookie::build((link_claim_cookie_name(https), secret.encode()))
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::minutes(5))
        .build();
    header_value(&cookie)
}

/// The link claims the request carries (the newest link's last).
pub(crate) fn link_claims(headers: &HeaderMap, https: bool) -> Vec<String> {
    cookie_values(headers, link_claim_cookie_name(https)).collect()
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Base64url characters, a UUID path (or nothing) always make a valid
    // header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// Values of every cookie called `name` (malformed headers are skipped).
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// The session token a request carries: `Authorization: Bearer` first, then
/// the cookie.
pub(crate) fn presented_token(headers: &HeaderMap, https: bool) -> Option<Secret> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    bearer
        .or_else(|| cookie_values(headers, session_cookie_name(https)).next())
        .and_then(|raw| Secret::decode(raw.trim()))
}
