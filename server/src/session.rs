//! Signed-in sessions: the cookie (browsers) or bearer token (apps) that
//! says which account is calling. Tokens are 256 random bits; only their
//! SHA-256 is stored.

use app::api::SessionInfo;
use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap, HeaderValue},
};
use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::{
    account::{
        store::{NewSession, Session, SignInMethod, SESSION_IDLE_LIMIT_MS},
        Account,
    },
    client::{describe_user_agent, ClientContext},
    error::ApiError,
    login::{now_millis, UnixMillis},
    secret::Secret,
    AppState,
};

/// Refresh `last_seen_at` at most this often, to spare the database.
const TOUCH_EVERY_MS: u64 = 60_000;

/// `__Host-` pins the cookie to this exact host and path `/` over https.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-qrlogin_session"
    } else {
        "qrlogin_session"
    }
}

pub fn session_cookie(token: &Secret, https: bool) -> HeaderValue {
    let max_age = time::Duration::milliseconds(SESSION_IDLE_LIMIT_MS as i64);
    session_cookie_with(token.encode(), max_age, https)
}

pub fn clear_session_cookie(https: bool) -> HeaderValue {
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
    // Base64url characters (or nothing) always make a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// Values of every cookie called `name` (malformed headers are skipped).
pub fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(move |cookie| cookie.name() == name)
        .map(|cookie| cookie.value().to_owned())
}

/// The token a request carries: `Authorization: Bearer` first, then the cookie.
fn presented_token(headers: &HeaderMap, https: bool) -> Option<Secret> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    bearer
        .or_else(|| cookie_values(headers, session_cookie_name(https)).next())
        .and_then(|raw| Secret::decode(raw.trim()))
}

/// The signed-in account making the request; rejects with 401 otherwise.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session: Session,
    pub account: Account,
}

impl CurrentSession {
    /// Looks the request's session up; `Ok(None)` when it has none that works.
    pub async fn from_headers(
        state: &AppState,
        headers: &HeaderMap,
    ) -> Result<Option<Self>, ApiError> {
        let Some(token) = presented_token(headers, state.public_url.is_https()) else {
            return Ok(None);
        };
        let now = now_millis();
        let found = state
            .accounts
            .session_by_token(&token.hash(), now)
            .await
            .map_err(ApiError::internal)?;
        let Some((session, account)) = found else {
            return Ok(None);
        };
        if now.saturating_sub(session.last_seen_at) > TOUCH_EVERY_MS {
            state
                .accounts
                .touch_session(&session.id, now)
                .await
                .map_err(ApiError::internal)?;
        }
        Ok(Some(Self { session, account }))
    }
}

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Self::from_headers(state, &parts.headers)
            .await?
            .ok_or(ApiError::NotSignedIn)
    }
}

/// Signs `account` in from this client: a new session and its token.
pub async fn start_session(
    state: &AppState,
    account: &Account,
    method: SignInMethod,
    client: &ClientContext,
) -> Result<(Secret, Session), ApiError> {
    let token = Secret::new_random();
    let new = NewSession {
        account_id: account.id,
        method,
        user_agent: client.user_agent.clone(),
        ip: client.ip_string(),
    };
    let session = state
        .accounts
        .create_session(&token.hash(), &new, now_millis())
        .await
        .map_err(ApiError::internal)?;
    tracing::debug!(account = %account.username, session = %session.id, method = ?method, "signed in");
    state.audit.record_sign_in(account.id, &session.id, client);
    Ok((token, session))
}

pub fn rfc3339(at: UnixMillis) -> String {
    use time::{format_description::well_known::Rfc3339, OffsetDateTime};
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

pub fn session_info(session: &Session, current_id: &str) -> SessionInfo {
    let (browser, os) = describe_user_agent(&session.user_agent);
    SessionInfo {
        id: session.id.clone(),
        method: session.method.clone(),
        browser,
        os,
        ip: session.ip.clone(),
        created_at: rfc3339(session.created_at),
        last_seen_at: rfc3339(session.last_seen_at),
        current: session.id == current_id,
    }
}
