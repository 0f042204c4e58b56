//! HTTP handlers for the desktop side of a login attempt.

use app::api::{LoginCreated, LoginState, LoginStatus, LOGINS_PATH};
use axum::{
    extract::{FromRequestParts, Path, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use axum_extra::extract::cookie::{Cookie, SameSite};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::{now_millis, Attempt, BindSecret, LoginId, UnixMillis};
use crate::{error::ApiError, AppState};

/// Name of the bind cookie; the `__Secure-` prefix makes browsers refuse it
/// over plain http. (`__Host-` would require `Path=/`, and the bind cookie is
/// deliberately scoped to its own attempt's path.)
pub fn bind_cookie_name(https: bool) -> &'static str {
    if https {
        "__Secure-qrlogin_bind"
    } else {
        "qrlogin_bind"
    }
}

/// The `{id}` path segment, validated before any handler runs.
pub struct LoginIdPath(pub LoginId);

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

fn rfc3339(at: UnixMillis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn seconds_until(at: UnixMillis, now: UnixMillis) -> u64 {
    at.saturating_sub(now).div_ceil(1000)
}

/// `POST /api/v1/logins`: a new attempt bound to the calling browser.
/// The request body is never read, so a client cannot choose the id.
pub async fn create_login(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = now_millis();
    let secret = BindSecret::new_random();
    let attempt = Attempt {
        id: LoginId::new_random(),
        bind_hash: secret.hash(),
        state: LoginState::Pending,
        version: 1,
        created_at: now,
        expires_at: now + state.ttls.pending.as_millis() as u64,
    };
    state
        .logins
        .insert(attempt.clone())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(login_id = %attempt.id, "login attempt created");

    let path = format!("{LOGINS_PATH}/{}", attempt.id);
    let https = state.public_url.is_https();
    // Lives as long as the attempt can: pending, then scanned, then approved.
    let max_age = state.ttls.pending + state.ttls.scanned + state.ttls.approved;
    let cookie = Cookie::build((bind_cookie_name(https), secret.encode()))
        .path(path.clone())
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(max_age.as_secs() as i64))
        .build();
    let body = LoginCreated {
        id: attempt.id.to_string(),
        qr_url: format!("{}/q/{}", state.public_url.as_str(), attempt.id),
        expires_at: rfc3339(attempt.expires_at),
        expires_in: seconds_until(attempt.expires_at, now),
        version: attempt.version,
    };
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie.to_string()).map_err(ApiError::internal)?,
    );
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&path).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// Every bind secret the browser sent (a browser may hold several cookies of
/// that name for different paths); malformed values are ignored.
fn bind_secrets(headers: &HeaderMap, https: bool) -> Vec<BindSecret> {
    let name = bind_cookie_name(https);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .filter(|cookie| cookie.name() == name)
        .filter_map(|cookie| BindSecret::decode(cookie.value()))
        .collect()
}

/// Loads an attempt for its bound browser. Unknown ids and wrong or missing
/// secrets fail alike, after the same work.
pub async fn load_bound(
    state: &AppState,
    id: LoginId,
    headers: &HeaderMap,
    now: UnixMillis,
) -> Result<Attempt, ApiError> {
    let attempt = state
        .logins
        .get(id, now)
        .await
        .map_err(ApiError::internal)?;
    let secrets = bind_secrets(headers, state.public_url.is_https());
    let stored = attempt
        .as_ref()
        .map(|a| a.bind_hash)
        .unwrap_or(super::BindHash([0; 32]));
    let mut bound = false;
    if secrets.is_empty() {
        stored.matches(None);
    }
    for secret in &secrets {
        bound |= stored.matches(Some(secret));
    }
    match attempt {
        Some(attempt) if bound => Ok(attempt),
        _ => Err(ApiError::LoginNotFound),
    }
}

/// `GET /api/v1/logins/{id}`: the attempt's state, for its browser only.
pub async fn get_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    headers: HeaderMap,
) -> Result<Json<LoginStatus>, ApiError> {
    let now = now_millis();
    let attempt = load_bound(&state, id, &headers, now).await?;
    Ok(Json(LoginStatus {
        id: attempt.id.to_string(),
        state: attempt.state,
        version: attempt.version,
        expires_at: rfc3339(attempt.expires_at),
        expires_in: seconds_until(attempt.expires_at, now),
        scanner: None,
        match_code: None,
    }))
}
