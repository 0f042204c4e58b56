//! `/api/v1/logins…`: the desktop's calls (bound by its cookie) and the
//! phone's (authenticated by its session). Each extracts, calls one service
//! method and maps its answer.

use app::api::{paths, ApproveRequest, LoginCreated, LoginStatus, Redeemed, Scanned, StateChanged};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;

use crate::{
    domain::{
        caller::Caller,
        time::{now_millis, rfc3339, seconds_until},
    },
    http::{
        cookies::{bind_cookie, session_cookie},
        error::ApiError,
        extract::{ApiJson, ApiQuery, BindSecrets, LoginIdPath},
        views, AppState,
    },
    services::{accounts::CurrentSession, logins::Created},
};

/// `POST /api/v1/logins`: a new attempt bound to the calling browser.
/// The request body is never read, so a client cannot choose the id.
pub(crate) async fn create_login(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Created {
        attempt,
        bind_secret,
    } = state.services.logins.create(&caller).await?;
    let path = paths::with_id(paths::LOGIN, &attempt.id.to_string());
    let https = state.public_url.is_https();
    let ttls = state.services.logins.ttls();
    let body = LoginCreated {
        id: attempt.id.to_string(),
        qr_url: format!("{}/q/{}", state.public_url.as_str(), attempt.id),
        expires_at: rfc3339(attempt.expires_at),
        expires_in: seconds_until(attempt.expires_at, now_millis()),
        version: attempt.version,
    };
    let location = HeaderValue::from_str(&path).map_err(ApiError::internal)?;
    let cookie = bind_cookie(&bind_secret, &path, &ttls, https);
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie), (header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PollParams {
    /// Answer once the version is greater than this.
    since: Option<u64>,
    /// Seconds to wait for that, at most 30.
    wait: Option<u64>,
}

/// `GET /api/v1/logins/{id}?since=V&wait=S`: the attempt's state, for its
/// browser only; a long poll when `since` and `wait` are given.
pub(crate) async fn get_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    ApiQuery(params): ApiQuery<PollParams>,
    caller: Caller,
    BindSecrets(secrets): BindSecrets,
) -> Result<Json<LoginStatus>, ApiError> {
    let wait = params.wait.unwrap_or(0);
    let attempt = state
        .services
        .logins
        .status(id, &secrets, &caller, params.since, wait)
        .await?;
    Ok(Json(views::login_status(&attempt, now_millis())))
}

/// `POST /api/v1/logins/{id}/redeem`: the bound desktop collects its session.
pub(crate) async fn redeem_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    caller: Caller,
    BindSecrets(secrets): BindSecrets,
) -> Result<Response, ApiError> {
    let (token, account) = state.services.logins.redeem(id, &secrets, &caller).await?;
    let cookie = session_cookie(&token, state.public_url.is_https());
    let body = Redeemed {
        user: account.to_api(),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `DELETE /api/v1/logins/{id}`: the desktop gave up (page left).
pub(crate) async fn cancel_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    caller: Caller,
    BindSecrets(secrets): BindSecrets,
) -> Result<StatusCode, ApiError> {
    state.services.logins.cancel(id, &secrets, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/logins/{id}/scan`.
pub(crate) async fn scan_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    caller: Caller,
) -> Result<Json<Scanned>, ApiError> {
    let attempt = state.services.logins.scan(id, &current, &caller).await?;
    Ok(Json(views::scanned(&attempt, &caller, now_millis())))
}

/// `POST /api/v1/logins/{id}/approve` `{match_code}`. The approving account
/// is the session's; the body carries nothing else.
pub(crate) async fn approve_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    caller: Caller,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<Json<StateChanged>, ApiError> {
    let logins = &state.services.logins;
    let attempt = logins
        .approve(id, &current, &caller, body.match_code)
        .await?;
    Ok(Json(StateChanged {
        state: attempt.state,
    }))
}

/// `POST /api/v1/logins/{id}/deny`.
pub(crate) async fn deny_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    caller: Caller,
) -> Result<Json<StateChanged>, ApiError> {
    let attempt = state.services.logins.deny(id, &current, &caller).await?;
    Ok(Json(StateChanged {
        state: attempt.state,
    }))
}
