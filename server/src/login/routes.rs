//! HTTP handlers of a login attempt: the desktop's (bound by cookie) and the
//! phone's (authenticated by session).

use std::time::Duration;

use app::api::{
    ApproveRequest, LoginCreated, LoginState, LoginStatus, Redeemed, Requester as ApiRequester,
    Scanned, StateChanged, LOGINS_PATH,
};
use axum::{
    extract::{FromRequestParts, Path, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::{
    now_millis, store::Applied, Attempt, LoginId, Requester, Scanner, Transition, UnixMillis,
};
use crate::{
    account::store::SignInMethod,
    audit::AuditEvent,
    client::{describe_user_agent, same_network, ClientContext},
    error::ApiError,
    extract::{ApiJson, ApiQuery},
    limits::ip_key,
    secret::{Secret, SecretHash},
    session::{cookie_values, rfc3339, session_cookie, start_session, CurrentSession},
    AppState,
};

/// Longest long poll a client may ask for.
pub const MAX_WAIT_S: u64 = 30;

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

fn seconds_until(at: UnixMillis, now: UnixMillis) -> u64 {
    at.saturating_sub(now).div_ceil(1000)
}

/// `POST /api/v1/logins`: a new attempt bound to the calling browser.
/// The request body is never read, so a client cannot choose the id.
pub async fn create_login(
    State(state): State<AppState>,
    client: ClientContext,
) -> Result<Response, ApiError> {
    state.limits.create.check(&ip_key(client.ip))?;
    let now = now_millis();
    let secret = Secret::new_random();
    let requester = Requester {
        ip: client.ip,
        user_agent: client.user_agent.clone(),
    };
    let attempt = Attempt::new(
        LoginId::new_random(),
        secret.hash(),
        requester,
        now,
        &state.ttls,
    );
    state
        .logins
        .insert(attempt.clone())
        .await
        .map_err(ApiError::internal)?;
    tracing::debug!(login_id = %attempt.id, "login attempt created");
    state
        .audit
        .record(AuditEvent::LoginCreated, Some(attempt.id), None, &client);

    let path = format!("{LOGINS_PATH}/{}", attempt.id);
    let https = state.public_url.is_https();
    // Lives as long as the attempt can: pending, then scanned, then approved.
    let ttls = state.ttls;
    let max_age = ttls.pending + ttls.scanned + ttls.approved;
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
    let stored = attempt
        .as_ref()
        .map(|a| a.bind_hash)
        .unwrap_or(SecretHash([0; 32]));
    // A browser may hold several bind cookies (other tabs' attempts on
    // overlapping paths); any one of them may be the right one.
    let secrets: Vec<Secret> =
        cookie_values(headers, bind_cookie_name(state.public_url.is_https()))
            .filter_map(|raw| Secret::decode(&raw))
            .collect();
    let mut bound = secrets.is_empty() && stored.matches(None);
    for secret in &secrets {
        bound |= stored.matches(Some(secret));
    }
    match attempt {
        Some(attempt) if bound => Ok(attempt),
        _ => Err(ApiError::LoginNotFound),
    }
}

/// What the bound desktop may know: before approval, only the scanner's
/// display name and the match code.
fn status_of(attempt: &Attempt, now: UnixMillis) -> LoginStatus {
    let shows_scanner = matches!(
        attempt.state,
        LoginState::Scanned | LoginState::Approved | LoginState::Redeemed
    );
    LoginStatus {
        id: attempt.id.to_string(),
        state: attempt.state,
        version: attempt.version,
        expires_at: rfc3339(attempt.expires_at),
        expires_in: seconds_until(attempt.expires_at, now),
        scanner: attempt
            .scanner
            .as_ref()
            .filter(|_| shows_scanner)
            .map(|s| s.display_name.clone()),
        match_code: attempt
            .match_code
            .filter(|_| attempt.state == LoginState::Scanned),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollParams {
    /// Answer once the version is greater than this.
    since: Option<u64>,
    /// Seconds to wait for that, at most [`MAX_WAIT_S`].
    wait: Option<u64>,
}

/// `GET /api/v1/logins/{id}?since=V&wait=S`: the attempt's state, for its
/// browser only; a long poll when `since` and `wait` are given.
pub async fn get_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    ApiQuery(params): ApiQuery<PollParams>,
    client: ClientContext,
    headers: HeaderMap,
) -> Result<Json<LoginStatus>, ApiError> {
    state.limits.poll.check(&ip_key(client.ip))?;
    let wait = params.wait.unwrap_or(0);
    if wait > MAX_WAIT_S {
        return Err(ApiError::BadRequest(format!(
            "wait must be between 0 and {MAX_WAIT_S} seconds."
        )));
    }
    let attempt = load_bound(&state, id, &headers, now_millis()).await?;
    let attempt = match params.since {
        Some(since) if wait > 0 && attempt.version <= since && !attempt.state.is_terminal() => {
            wait_for_change(&state, attempt, since, Duration::from_secs(wait)).await?
        }
        _ => attempt,
    };
    Ok(Json(status_of(&attempt, now_millis())))
}

/// Waits on the attempt's version channel (no polling, no thread) until it
/// passes `since`, the attempt's time runs out, or `wait` ends.
async fn wait_for_change(
    state: &AppState,
    attempt: Attempt,
    since: u64,
    wait: Duration,
) -> Result<Attempt, ApiError> {
    let Some(mut version) = state
        .logins
        .subscribe(attempt.id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(attempt);
    };
    let until_expiry = Duration::from_millis(attempt.expires_at.saturating_sub(now_millis()));
    let _ = tokio::time::timeout(wait.min(until_expiry), version.wait_for(|v| *v > since)).await;
    // Reading again also expires the attempt if its time ran out.
    Ok(state
        .logins
        .get(attempt.id, now_millis())
        .await
        .map_err(ApiError::internal)?
        .unwrap_or(attempt))
}

/// Applies a transition to an attempt that exists, failing as the SPEC says,
/// and writes what changed to the audit trail.
async fn transition(
    state: &AppState,
    id: LoginId,
    transition: &Transition,
    account_id: Option<i64>,
    client: &ClientContext,
) -> Result<Attempt, ApiError> {
    let Applied {
        attempt,
        outcome,
        changed,
    } = state
        .logins
        .apply(id, transition, now_millis(), &state.ttls)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::LoginNotFound)?;
    if changed {
        let event = match attempt.state {
            LoginState::Scanned => Some(AuditEvent::LoginScanned),
            LoginState::Approved => Some(AuditEvent::LoginApproved),
            LoginState::Denied => Some(AuditEvent::LoginDenied),
            LoginState::Redeemed => Some(AuditEvent::LoginRedeemed),
            LoginState::Cancelled => Some(AuditEvent::LoginCancelled),
            // Written once, when the purge drops the attempt (see `purge_finished_logins`).
            LoginState::Expired | LoginState::Pending => None,
        };
        if let Some(event) = event {
            state.audit.record(event, Some(id), account_id, client);
        }
    }
    outcome?;
    Ok(attempt)
}

/// `POST /api/v1/logins/{id}/redeem`: the bound desktop collects its session.
/// Atomic: of racing redeems exactly one succeeds.
pub async fn redeem_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    client: ClientContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.limits.poll.check(&ip_key(client.ip))?;
    load_bound(&state, id, &headers, now_millis()).await?;
    let attempt = transition(&state, id, &Transition::Redeem, None, &client).await?;
    let approver = attempt
        .scanner
        .ok_or_else(|| ApiError::BadRequest("approved attempt without scanner".into()))?;
    // The account comes from the approving phone's session, never from input.
    let account = state
        .accounts
        .account_by_id(approver.account_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::Transition(super::TransitionError::Finished(
            LoginState::Redeemed,
        )))?;
    let (token, _session) = start_session(&state, &account, SignInMethod::Qr, &client).await?;
    tracing::debug!(login_id = %id, account = %account.username, "login redeemed");
    let mut response = Json(Redeemed {
        user: account.to_api(),
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&token, state.public_url.is_https()),
    );
    Ok(response)
}

/// `DELETE /api/v1/logins/{id}`: the desktop gave up (page left).
pub async fn cancel_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    client: ClientContext,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.limits.poll.check(&ip_key(client.ip))?;
    let attempt = load_bound(&state, id, &headers, now_millis()).await?;
    if attempt.state == LoginState::Cancelled {
        return Ok(StatusCode::NO_CONTENT);
    }
    transition(&state, id, &Transition::Cancel, None, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The phone's view of an attempt it scanned.
pub fn scanned_view(attempt: &Attempt, phone: &ClientContext, now: UnixMillis) -> Scanned {
    let (browser, os) = describe_user_agent(&attempt.requester.user_agent);
    Scanned {
        requester: ApiRequester {
            browser,
            os,
            ip: attempt
                .requester
                .ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            age_s: now.saturating_sub(attempt.created_at) / 1000,
            same_network: same_network(attempt.requester.ip, phone.ip),
        },
        match_choices: attempt.match_choices.unwrap_or_default(),
        state: attempt.state,
    }
}

/// Scans for the signed-in phone account; repeating it is harmless.
pub async fn scan(
    state: &AppState,
    id: LoginId,
    current: &CurrentSession,
    client: &ClientContext,
) -> Result<Attempt, ApiError> {
    state.limits.scan_ip.check(&ip_key(client.ip))?;
    state.limits.scan_account.check(&current.account.id)?;
    let scanner = Scanner {
        account_id: current.account.id,
        display_name: current.account.display_name.clone(),
    };
    let attempt = transition(
        state,
        id,
        &Transition::scan(scanner),
        Some(current.account.id),
        client,
    )
    .await?;
    tracing::debug!(login_id = %id, account = %current.account.username, "login scanned");
    Ok(attempt)
}

pub async fn approve(
    state: &AppState,
    id: LoginId,
    current: &CurrentSession,
    client: &ClientContext,
    match_code: u8,
) -> Result<Attempt, ApiError> {
    check_decide_limits(state, current, client)?;
    let approve = Transition::Approve {
        account_id: current.account.id,
        match_code,
    };
    let result = transition(state, id, &approve, Some(current.account.id), client).await;
    tracing::debug!(login_id = %id, account = %current.account.username, ok = result.is_ok(), "login approval");
    result
}

fn check_decide_limits(
    state: &AppState,
    current: &CurrentSession,
    client: &ClientContext,
) -> Result<(), ApiError> {
    state.limits.decide_ip.check(&ip_key(client.ip))?;
    state.limits.decide_account.check(&current.account.id)
}

pub async fn deny(
    state: &AppState,
    id: LoginId,
    current: &CurrentSession,
    client: &ClientContext,
) -> Result<Attempt, ApiError> {
    check_decide_limits(state, current, client)?;
    let deny = Transition::Deny {
        account_id: current.account.id,
    };
    let attempt = transition(state, id, &deny, Some(current.account.id), client).await?;
    tracing::debug!(login_id = %id, account = %current.account.username, "login denied");
    Ok(attempt)
}

/// `POST /api/v1/logins/{id}/scan`.
pub async fn scan_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    client: ClientContext,
) -> Result<Json<Scanned>, ApiError> {
    let attempt = scan(&state, id, &current, &client).await?;
    Ok(Json(scanned_view(&attempt, &client, now_millis())))
}

/// `POST /api/v1/logins/{id}/approve` `{match_code}`. The approving account
/// is the session's; the body carries nothing else.
pub async fn approve_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    client: ClientContext,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> Result<Json<StateChanged>, ApiError> {
    let attempt = approve(&state, id, &current, &client, body.match_code).await?;
    Ok(Json(StateChanged {
        state: attempt.state,
    }))
}

/// `POST /api/v1/logins/{id}/deny`.
pub async fn deny_login(
    State(state): State<AppState>,
    LoginIdPath(id): LoginIdPath,
    current: CurrentSession,
    client: ClientContext,
) -> Result<Json<StateChanged>, ApiError> {
    let attempt = deny(&state, id, &current, &client).await?;
    Ok(Json(StateChanged {
        state: attempt.state,
    }))
}
