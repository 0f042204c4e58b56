//! Sign-in, sign-out and the session list: `/api/v1/session`, `/me`,
//! `/sessions`.

use app::api::{Me, RecentSignIn, SessionInfo, SignInRequest, SignedIn};
use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use tokio::sync::OnceCell;

use super::{Account, Password, Username};
use crate::{
    account::store::SignInMethod,
    audit::AuditEvent,
    client::{describe_user_agent, ClientContext},
    error::ApiError,
    extract::{ApiJson, ApiPath},
    limits::ip_key,
    login::now_millis,
    session::{
        clear_session_cookie, rfc3339, session_cookie, session_info, start_session, CurrentSession,
    },
    AppState,
};

/// A hash to check passwords against when the account does not exist, so
/// that "no such user" costs the same time as "wrong password".
static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

/// Checks a username and password; the same error for every failure.
pub async fn authenticate(
    state: &AppState,
    username: &str,
    password: &str,
    client: &ClientContext,
) -> Result<Account, ApiError> {
    // Before any hashing, so a flood cannot burn the CPU either. Keyed by
    // the name as typed, existing or not: the answer tells nothing.
    state.limits.sign_in_ip.check(&ip_key(client.ip))?;
    let folded = username.trim().to_ascii_lowercase();
    state
        .limits
        .sign_in_username
        .check(&folded.chars().take(64).collect())?;
    let (Ok(username), Ok(password)) = (Username::parse(username), Password::parse(password))
    else {
        return Err(ApiError::InvalidCredentials);
    };
    let found = state
        .accounts
        .find_account(&username)
        .await
        .map_err(ApiError::internal)?;
    let (account, stored) = match found {
        Some((account, hash)) => (Some(account), hash),
        None => {
            let dummy = DUMMY_HASH
                .get_or_try_init(|| async {
                    Password::parse("not a real password")
                        .map_err(ApiError::internal)?
                        .hash()
                        .await
                        .map_err(ApiError::internal)
                })
                .await?;
            (None, dummy.clone())
        }
    };
    let ok = password.verify(stored).await.map_err(ApiError::internal)?;
    match account {
        Some(account) if ok => Ok(account),
        account => {
            tracing::info!(username = %username, "sign-in refused");
            state.audit.record(
                AuditEvent::SignInFailed,
                None,
                account.map(|a| a.id),
                client,
            );
            Err(ApiError::InvalidCredentials)
        }
    }
}

/// `POST /api/v1/session` `{username, password}`.
pub async fn sign_in(
    State(state): State<AppState>,
    client: ClientContext,
    ApiJson(body): ApiJson<SignInRequest>,
) -> Result<Response, ApiError> {
    let account = authenticate(&state, &body.username, &body.password, &client).await?;
    let (token, _) = start_session(&state, &account, SignInMethod::Password, &client).await?;
    let cookie = session_cookie(&token, state.public_url.is_https());
    let body = SignedIn {
        user: account.to_api(),
        token: token.encode(),
    };
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Ends the request's session, if it has one.
pub async fn end_session(
    state: &AppState,
    headers: &HeaderMap,
    client: &ClientContext,
) -> Result<(), ApiError> {
    if let Some(current) = CurrentSession::from_headers(state, headers).await? {
        state
            .accounts
            .delete_session(current.account.id, &current.session.id)
            .await
            .map_err(ApiError::internal)?;
        tracing::info!(account = %current.account.username, session = %current.session.id, "signed out");
        state.audit.record(
            AuditEvent::SignedOut,
            None,
            Some(current.account.id),
            client,
        );
    }
    Ok(())
}

/// `DELETE /api/v1/session`: signs out; harmless when not signed in.
pub async fn sign_out(
    State(state): State<AppState>,
    client: ClientContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    end_session(&state, &headers, &client).await?;
    let cookie = clear_session_cookie(state.public_url.is_https());
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `GET /api/v1/me`.
pub async fn me(current: CurrentSession) -> Json<Me> {
    Json(Me {
        user: current.account.to_api(),
        session: session_info(&current.session, &current.session.id),
    })
}

/// The account's sessions, newest first, this one marked.
pub async fn sessions_of(
    state: &AppState,
    current: &CurrentSession,
) -> Result<Vec<SessionInfo>, ApiError> {
    let sessions = state
        .accounts
        .list_sessions(current.account.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(sessions
        .iter()
        .map(|s| session_info(s, &current.session.id))
        .collect())
}

/// How many sign-ins the phone home lists.
const RECENT_SIGN_INS: u32 = 10;

/// The account's latest sign-ins, those since its last look marked new
/// (and that look noted now).
pub async fn recent_sign_ins(
    state: &AppState,
    current: &CurrentSession,
) -> Result<Vec<RecentSignIn>, ApiError> {
    let account = current.account.id;
    let seen_before = state
        .accounts
        .mark_home_seen(account, now_millis())
        .await
        .map_err(ApiError::internal)?;
    let records = state
        .accounts
        .recent_sign_ins(account, RECENT_SIGN_INS)
        .await
        .map_err(ApiError::internal)?;
    Ok(records
        .into_iter()
        .map(|r| {
            let (browser, os) = describe_user_agent(&r.user_agent);
            let current_session = r.active_session.as_deref() == Some(current.session.id.as_str());
            RecentSignIn {
                at: rfc3339(r.at),
                browser,
                os,
                ip: r.ip,
                new: r.at > seen_before && !current_session,
                current: current_session,
                session_id: r.active_session,
            }
        })
        .collect())
}

/// `GET /api/v1/sessions`.
pub async fn list_sessions(
    State(state): State<AppState>,
    current: CurrentSession,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    Ok(Json(sessions_of(&state, &current).await?))
}

/// Revokes one of the account's own sessions; at once, everywhere.
pub async fn revoke(
    state: &AppState,
    current: &CurrentSession,
    id: &str,
    client: &ClientContext,
) -> Result<(), ApiError> {
    let removed = uuid::Uuid::try_parse(id).is_ok()
        && state
            .accounts
            .delete_session(current.account.id, id)
            .await
            .map_err(ApiError::internal)?;
    if !removed {
        return Err(ApiError::SessionNotFound);
    }
    tracing::info!(account = %current.account.username, session = %id, "session revoked");
    state.audit.record(
        AuditEvent::SessionRevoked,
        None,
        Some(current.account.id),
        client,
    );
    Ok(())
}

/// `DELETE /api/v1/sessions/{id}`.
pub async fn revoke_session(
    State(state): State<AppState>,
    current: CurrentSession,
    client: ClientContext,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &current, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}
