//! `/api/v1/logins…`: the desktop's calls (bound by its cookie) and the
//! phone's (authenticated by its session). Each extracts, calls one service
//! method and maps its answer.

use app::api::{
    paths, ApproveOptionsRequest, ApproveRequest, LoginCreated, LoginStatus, Redeemed, Scanned,
    StateChanged,
};
use axum::{
    extract::State,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    domain::{
        caller::Caller,
        time::{now_millis, rfc3339, seconds_until},
    },
    http::{
        cookies::{bind_cookie, session_cookie},
        error::ApiError,
        extract::{ApiJson, ApiQuery, BindSecrets, LoginIdPath, SessionToken},
        state::AppState,
        views,
    },
    services::{
        accounts::CurrentSession,
        logins::{Created, PhoneStep},
    },
};

/// Other query parameters are ignored, as the body is: nothing a client
/// sends names the attempt.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CreateParams {
    /// An OpenID Connect authorization request waiting for the phone (the
    /// `/authorize?request=…` page's, sealed by the server: base64url): the
    /// phone then names its application, and only a sign-in approved for it
    /// completes it. One this server did not seal, or older than 10
    /// minutes, is `404 login_not_found`.
    #[param(max_length = 2400, pattern = "^[A-Za-z0-9_-]+$")]
    authorization: Option<String>,
}

/// `POST /api/v1/logins`: a new attempt bound to the calling browser.
/// The request body is never read, so a client cannot choose the id.
#[utoipa::path(post, path = paths::LOGINS, tag = "desktop", params(CreateParams),
    responses((status = 201, description = "A new attempt, bound to this browser by the cookie", body = LoginCreated,
        headers(("Set-Cookie" = String, description = "The bind cookie: `qrlogin_bind` (`__Secure-qrlogin_bind` over https), HttpOnly, SameSite=Strict, scoped to the attempt's path"),
                ("Location" = String, description = "The attempt's path")))))]
pub(crate) async fn create_login(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<CreateParams>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Created {
        attempt,
        bind_secret,
    } = match &params.authorization {
        Some(request) => state.services.oidc.create_login(request, &caller).await?,
        None => state.services.logins.create(&caller).await?,
    };
    let path = paths::with_id(paths::LOGIN, attempt.id);
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct PollParams {
    /// Answer once the version is greater than this.
    since: Option<u64>,
    /// Seconds to wait for that, at most 30.
    #[param(maximum = 30)]
    wait: Option<u64>,
}

/// `GET /api/v1/logins/{id}?since=V&wait=S`: the attempt's state, for its
/// browser only; a long poll when `since` and `wait` are given.
#[utoipa::path(get, path = paths::LOGIN, tag = "desktop", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"), PollParams),
    security(("bind_cookie" = [])),
    responses((status = 200, description = "The attempt as its browser may see it", body = LoginStatus)))]
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
#[utoipa::path(post, path = paths::LOGIN_REDEEM, tag = "desktop", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    security(("bind_cookie" = [])),
    responses((status = 200, description = "Signed in as the approving account", body = Redeemed,
        headers(("Set-Cookie" = String, description = "The session cookie: `qrlogin_session` (`__Host-qrlogin_session` over https)")))))]
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
#[utoipa::path(delete, path = paths::LOGIN, tag = "desktop", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    security(("bind_cookie" = [])),
    responses((status = 204, description = "Cancelled (or it already was)")))]
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
#[utoipa::path(post, path = paths::LOGIN_SCAN, tag = "phone", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Scanned by this account: who asks, and the numbers to pick from", body = Scanned)))]
pub(crate) async fn scan_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    SessionToken(token): SessionToken,
    caller: Caller,
) -> Result<Json<Scanned>, ApiError> {
    let logins = &state.services.logins;
    let current = logins
        .phone(token.as_ref(), &caller, PhoneStep::Scan)
        .await?;
    let attempt = logins.scan_counted(id, &current, &caller).await?;
    let mut scanned = views::scanned(&attempt, &caller, now_millis());
    scanned.needs_passkey = logins
        .approval_needs_passkey(&attempt, current.account.id, &caller)
        .await?;
    Ok(Json(scanned))
}

/// `POST /api/v1/logins/{id}/approve/options` `{match_code}`: the options
/// for `navigator.credentials.get()` whose challenge is derived from this
/// attempt, this number and who is asking; the assertion made with them
/// approves exactly that.
#[utoipa::path(post, path = paths::LOGIN_APPROVE_OPTIONS, tag = "phone", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    request_body = ApproveOptionsRequest,
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "WebAuthn request options (`{publicKey: …}`, base64url)", body = Object)))]
pub(crate) async fn approve_options(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    ApiJson(body): ApiJson<ApproveOptionsRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let options = state
        .services
        .logins
        .approval_options(id, &current, body.match_code)
        .await?;
    serde_json::to_value(options)
        .map(Json)
        .map_err(ApiError::internal)
}

/// `POST /api/v1/logins/{id}/approve` `{match_code, passkey?}`. The
/// approving account is the session's; the body carries only the number and,
/// when one is needed, the passkey assertion that signed it.
#[utoipa::path(post, path = paths::LOGIN_APPROVE, tag = "phone", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    request_body = ApproveRequest,
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Approved", body = StateChanged)))]
pub(crate) async fn approve_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    SessionToken(token): SessionToken,
    caller: Caller,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<Json<StateChanged>, ApiError> {
    let logins = &state.services.logins;
    let current = logins
        .phone(token.as_ref(), &caller, PhoneStep::Decide)
        .await?;
    let passkey = body.passkey.map(|p| p.to_string());
    let attempt = logins
        .approve_counted(id, &current, &caller, body.match_code, passkey.as_deref())
        .await?;
    Ok(Json(StateChanged {
        state: attempt.state,
    }))
}

/// `POST /api/v1/logins/{id}/deny`.
#[utoipa::path(post, path = paths::LOGIN_DENY, tag = "phone", params(("id" = String, Path, description = "The attempt's id, as `POST /api/v1/logins` made it (a lower-case version-4 UUID)", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "Denied", body = StateChanged)))]
pub(crate) async fn deny_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    SessionToken(token): SessionToken,
    caller: Caller,
) -> Result<Json<StateChanged>, ApiError> {
    let logins = &state.services.logins;
    let current = logins
        .phone(token.as_ref(), &caller, PhoneStep::Decide)
        .await?;
    let attempt = logins.deny_counted(id, &current, &caller).await?;
    Ok(Json(StateChanged {
        state: attempt.state,
    }))
}
