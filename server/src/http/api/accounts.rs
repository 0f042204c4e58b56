//! Sign-in, sign-out and the session list: `/api/v1/session`, `/me`,
//! `/sessions`.

use app::api::{paths, Me, SessionInfo, SignInRequest, SignedIn};
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};

use crate::{
    domain::caller::Caller,
    http::{
        cookies::{clear_session_cookie, session_cookie},
        error::ApiError,
        extract::{current_session, ApiJson, ApiPath},
        state::AppState,
        views,
    },
    services::accounts::CurrentSession,
};

/// `POST /api/v1/session` `{username, password}`.
#[utoipa::path(post, path = paths::SESSION, tag = "phone", request_body = SignInRequest,
    responses((status = 200, description = "Signed in; `token` works as `Authorization: Bearer`", body = SignedIn,
        headers(("Set-Cookie" = String, description = "The session cookie")))))]
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let accounts = &state.services.accounts;
    let (token, account) = accounts
        .sign_in(&body.username, &body.password, &caller)
        .await?;
    let cookie = session_cookie(&token, state.public_url.is_https());
    let body = SignedIn {
        user: account.to_api(),
        token: token.encode(),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `DELETE /api/v1/session`: signs out; harmless when not signed in.
#[utoipa::path(delete, path = paths::SESSION, tag = "phone",
    security((), ("bearer" = []), ("session_cookie" = [])),
    responses((status = 204, description = "Signed out (or was not signed in)",
        headers(("Set-Cookie" = String, description = "Clears the session cookie")))))]
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(current) = current_session(&state, &headers).await? {
        state.services.accounts.sign_out(&current, &caller).await?;
    }
    let cookie = clear_session_cookie(state.public_url.is_https());
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `GET /api/v1/me`.
#[utoipa::path(get, path = paths::ME, tag = "phone",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The signed-in account and this session", body = Me)))]
pub(crate) async fn me(current: CurrentSession) -> Json<Me> {
    Json(Me {
        user: current.account.to_api(),
        session: views::session_info(&current.session, &current.session.id),
    })
}

/// `GET /api/v1/sessions`: the account's sessions, newest first, this one
/// marked.
#[utoipa::path(get, path = paths::SESSIONS, tag = "phone",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The account's sessions, newest first", body = Vec<SessionInfo>)))]
pub(crate) async fn list_sessions(
    State(state): State<AppState>,
    current: CurrentSession,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let sessions = state.services.accounts.sessions(&current).await?;
    let current_id = &current.session.id;
    Ok(Json(
        sessions
            .iter()
            .map(|s| views::session_info(s, current_id))
            .collect(),
    ))
}

/// `DELETE /api/v1/sessions/{id}`: revokes one of the account's own
/// sessions.
#[utoipa::path(delete, path = paths::SESSION_BY_ID, tag = "phone",
    params(("id" = String, Path, description = "A session id from `GET /api/v1/sessions`")),
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 204, description = "Revoked: it stops working at once")))]
pub(crate) async fn revoke_session(
    State(state): State<AppState>,
    current: CurrentSession,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .accounts
        .revoke(&current, &id, &caller)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
