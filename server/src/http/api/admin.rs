//! The admin API, `/api/v1/admin/…`: accounts, apps, the audit trail,
//! status and admin API tokens, as the console offers them. Authenticated
//! by an administrator's session (cookie or Bearer session token) or by an
//! admin API token (`Authorization: Bearer qra_…`); every change by a
//! session needs its fresh proof of presence (`confirm_first` otherwise),
//! a `read` token may only GET. The services decide; handlers map.

use axum::{
    extract::{FromRequestParts, State},
    http::{header, request::Parts, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    domain::{
        audit::{AuditEvent, AuditRecord},
        time::rfc3339,
    },
    http::{
        error::ApiError,
        extract::{caller, current_session, ApiJson, ApiPath, ApiQuery},
        state::AppState,
    },
    services::{
        admin::{
            self, AccountSummary, AdminActor, AdminError, AdminTokenView, AppSummary, AuditFilter,
            NewApp, PasskeySelection, TokenScope,
        },
        invites::NewInvite,
    },
};

pub(crate) mod paths {
    pub const ACCOUNTS: &str = "/api/v1/admin/accounts";
    pub const ACCOUNT: &str = "/api/v1/admin/accounts/{username}";
    pub const ACCOUNT_DISABLE: &str = "/api/v1/admin/accounts/{username}/disable";
    pub const ACCOUNT_ENABLE: &str = "/api/v1/admin/accounts/{username}/enable";
    pub const ACCOUNT_ADMIN: &str = "/api/v1/admin/accounts/{username}/admin";
    pub const ACCOUNT_RESET: &str = "/api/v1/admin/accounts/{username}/reset";
    pub const ACCOUNT_INVITE: &str = "/api/v1/admin/accounts/{username}/invite";
    pub const ACCOUNT_SESSION: &str = "/api/v1/admin/accounts/{username}/sessions/{id}";
    pub const ACCOUNT_PASSKEY: &str = "/api/v1/admin/accounts/{username}/passkeys/{id}";
    pub const ACCOUNT_GRANT: &str = "/api/v1/admin/accounts/{username}/grants/{client_id}";
    pub const APPS: &str = "/api/v1/admin/apps";
    pub const APP: &str = "/api/v1/admin/apps/{client_id}";
    pub const APP_SECRET: &str = "/api/v1/admin/apps/{client_id}/secret";
    pub const AUDIT: &str = "/api/v1/admin/audit";
    pub const AUDIT_EXPORT: &str = "/api/v1/admin/audit/export";
    pub const STATUS: &str = "/api/v1/admin/status";
    pub const TOKENS: &str = "/api/v1/admin/tokens";
    pub const TOKEN: &str = "/api/v1/admin/tokens/{id}";
}

/// The administrator (or admin token) behind a request. Runs before any
/// other extractor reads the path, query or body: whoever may not
/// administer learns nothing else (401 without credentials, 403
/// `not_admin` for a signed-in account that is not an administrator).
pub(crate) struct Admin(pub AdminActor);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = caller(parts, &state.trusted_proxies);
        let write = !matches!(parts.method, Method::GET | Method::HEAD);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let services = &state.services;
        if let Some(token) = bearer.filter(|t| t.starts_with(admin::TOKEN_PREFIX)) {
            return Ok(Self(services.admin_by_token(token, write, &caller).await?));
        }
        let Some(current) = current_session(state, &parts.headers).await? else {
            return Err(AdminError::NotSignedIn.into());
        };
        Ok(Self(services.admin_by_session(&current, &caller).await?))
    }
}

// ---- accounts ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Part of a username or display name, any case.
    search: Option<String>,
    /// From 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 100 (25 by default).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

/// An account as listed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminAccount {
    id: i64,
    username: String,
    display_name: String,
    admin: bool,
    disabled: bool,
    /// RFC 3339.
    created_at: String,
    passkeys: usize,
    sessions: usize,
}

impl From<AccountSummary> for AdminAccount {
    fn from(a: AccountSummary) -> Self {
        Self {
            id: a.id,
            username: a.username,
            display_name: a.display_name,
            admin: a.admin,
            disabled: a.disabled,
            created_at: rfc3339(a.created_at.max(0) as u64),
            passkeys: a.passkeys,
            sessions: a.sessions,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountPage {
    items: Vec<AdminAccount>,
    page: u32,
    per_page: u32,
    total: u64,
}

/// `GET /api/v1/admin/accounts`.
#[utoipa::path(get, path = paths::ACCOUNTS, tag = "admin", params(ListParams),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "One page of the accounts, by id", body = AccountPage)))]
pub(crate) async fn admin_list_accounts(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<AccountPage>, ApiError> {
    let page = state
        .services
        .accounts_page(
            params.search.as_deref().unwrap_or_default(),
            params.page.unwrap_or(1),
            params.per_page.unwrap_or(admin::DEFAULT_PER_PAGE),
        )
        .await?;
    Ok(Json(AccountPage {
        items: page.items.into_iter().map(Into::into).collect(),
        page: page.page,
        per_page: page.per_page,
        total: page.total,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateAccountRequest {
    username: String,
    /// The username when absent.
    display_name: Option<String>,
    #[serde(default)]
    admin: bool,
    /// 72 by default, at most 744.
    #[schema(minimum = 1, maximum = 744)]
    valid_hours: Option<u64>,
}

/// An invite just made: its link and token are shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct InviteCreated {
    username: String,
    /// `enroll` or `reset`.
    kind: String,
    /// `{public URL}/invite/{token}`: open it on the phone (or show it as a QR).
    invite_url: String,
    token: String,
    /// RFC 3339.
    expires_at: String,
}

fn invite_created(state: &AppState, made: &NewInvite) -> InviteCreated {
    let token = made.token.encode();
    InviteCreated {
        username: made.account.username.clone(),
        kind: made.invite.kind.as_str().to_owned(),
        invite_url: format!("{}/invite/{token}", state.services.oidc.issuer()),
        token,
        expires_at: rfc3339(made.invite.expires_at),
    }
}

/// `POST /api/v1/admin/accounts`: a new account and its invite.
#[utoipa::path(post, path = paths::ACCOUNTS, tag = "admin", request_body = CreateAccountRequest,
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 201, description = "The account, with no way in until its invite is used", body = InviteCreated)))]
pub(crate) async fn admin_create_account(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateAccountRequest>,
) -> Result<Response, ApiError> {
    let made = state
        .services
        .create_account(
            &actor,
            &body.username,
            body.display_name.as_deref(),
            body.admin,
            body.valid_hours,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(invite_created(&state, &made))).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminSession {
    id: String,
    method: String,
    ip: String,
    user_agent: String,
    created_at: String,
    last_seen_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminPasskey {
    id: String,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminGrant {
    client_id: String,
    client_name: String,
    scopes: Vec<String>,
    granted_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminInvite {
    kind: String,
    created_at: String,
    expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountDetailBody {
    id: i64,
    username: String,
    display_name: String,
    admin: bool,
    disabled: bool,
    created_at: String,
    sessions: Vec<AdminSession>,
    passkeys: Vec<AdminPasskey>,
    grants: Vec<AdminGrant>,
    invites: Vec<AdminInvite>,
}

/// `GET /api/v1/admin/accounts/{username}`.
#[utoipa::path(get, path = paths::ACCOUNT, tag = "admin",
    params(("username" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "The account, its sessions, passkeys, apps and live invites", body = AccountDetailBody)))]
pub(crate) async fn admin_get_account(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<AccountDetailBody>, ApiError> {
    let d = state.services.account_detail(&username).await?;
    Ok(Json(AccountDetailBody {
        id: d.account.id,
        username: d.account.username,
        display_name: d.account.display_name,
        admin: d.account.admin,
        disabled: d.account.disabled,
        created_at: rfc3339(d.account.created_at.max(0) as u64),
        sessions: d
            .sessions
            .into_iter()
            .map(|s| AdminSession {
                id: s.id,
                method: s.method,
                ip: s.ip,
                user_agent: s.user_agent,
                created_at: rfc3339(s.created_at),
                last_seen_at: rfc3339(s.last_seen_at),
            })
            .collect(),
        passkeys: d
            .passkeys
            .into_iter()
            .map(|p| AdminPasskey {
                id: p.id,
                name: p.name,
                created_at: rfc3339(p.created_at),
                last_used_at: p.last_used_at.map(rfc3339),
            })
            .collect(),
        grants: d
            .grants
            .into_iter()
            .map(|g| AdminGrant {
                client_id: g.client_id,
                client_name: g.client_name,
                scopes: g.scopes,
                granted_at: g.granted_at.map(rfc3339),
            })
            .collect(),
        invites: d
            .invites
            .into_iter()
            .map(|i| AdminInvite {
                kind: i.kind.as_str().to_owned(),
                created_at: rfc3339(i.created_at),
                expires_at: rfc3339(i.expires_at),
            })
            .collect(),
    }))
}

/// `DELETE /api/v1/admin/accounts/{username}`: removes the account and
/// everything keyed by it (its id and subject are never reused).
#[utoipa::path(delete, path = paths::ACCOUNT, tag = "admin",
    params(("username" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Removed")))]
pub(crate) async fn admin_remove_account(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.services.remove_account_as(&actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/admin/accounts/{username}/disable`: every session and
/// app grant ends at once, on every instance; signing in is refused.
#[utoipa::path(post, path = paths::ACCOUNT_DISABLE, tag = "admin",
    params(("username" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Disabled")))]
pub(crate) async fn admin_disable_account(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.services.disable_account_as(&actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/admin/accounts/{username}/enable`.
#[utoipa::path(post, path = paths::ACCOUNT_ENABLE, tag = "admin",
    params(("username" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Enabled: it may sign in again")))]
pub(crate) async fn admin_enable_account(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.services.enable_account_as(&actor, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct SetAdminRequest {
    admin: bool,
}

/// `PUT /api/v1/admin/accounts/{username}/admin` `{admin}`.
#[utoipa::path(put, path = paths::ACCOUNT_ADMIN, tag = "admin", request_body = SetAdminRequest,
    params(("username" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Set")))]
pub(crate) async fn admin_set_admin(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<SetAdminRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .set_admin_as(&actor, &username, body.admin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ResetRequest {
    /// The passkeys to remove (ids as the account's detail lists them);
    /// absent: all of them.
    passkeys: Option<Vec<String>>,
    /// 72 by default, at most 744.
    #[schema(minimum = 1, maximum = 744)]
    valid_hours: Option<u64>,
}

/// `POST /api/v1/admin/accounts/{username}/reset`: a lost phone. Ends
/// every session and app grant, removes the chosen passkeys, revokes older
/// invites and answers a reset invite.
#[utoipa::path(post, path = paths::ACCOUNT_RESET, tag = "admin", request_body = ResetRequest,
    params(("username" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 201, description = "The reset invite, shown once", body = InviteCreated)))]
pub(crate) async fn admin_reset_account(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<Response, ApiError> {
    let selection = match body.passkeys {
        None => PasskeySelection::All,
        Some(ids) => PasskeySelection::Only(ids),
    };
    let made = state
        .services
        .reset_account_for_lost_phone(&actor, &username, selection, body.valid_hours)
        .await?;
    Ok((StatusCode::CREATED, Json(invite_created(&state, &made))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InviteParams {
    /// 72 by default, at most 744.
    #[param(minimum = 1, maximum = 744)]
    valid_hours: Option<u64>,
}

/// `POST /api/v1/admin/accounts/{username}/invite`: a new enroll invite for
/// an account that cannot sign in yet (older ones revoked).
#[utoipa::path(post, path = paths::ACCOUNT_INVITE, tag = "admin", params(("username" = String, Path), InviteParams),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 201, description = "The invite, shown once", body = InviteCreated)))]
pub(crate) async fn admin_invite_account(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(username): ApiPath<String>,
    ApiQuery(params): ApiQuery<InviteParams>,
) -> Result<Response, ApiError> {
    let made = state
        .services
        .invite_account(&actor, &username, params.valid_hours)
        .await?;
    Ok((StatusCode::CREATED, Json(invite_created(&state, &made))).into_response())
}

/// `DELETE /api/v1/admin/accounts/{username}/sessions/{id}`.
#[utoipa::path(delete, path = paths::ACCOUNT_SESSION, tag = "admin",
    params(("username" = String, Path), ("id" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Revoked, at once")))]
pub(crate) async fn admin_revoke_session(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath((username, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revoke_session_as(&actor, &username, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/admin/accounts/{username}/passkeys/{id}`: never the
/// account's last way in (reset it instead).
#[utoipa::path(delete, path = paths::ACCOUNT_PASSKEY, tag = "admin",
    params(("username" = String, Path), ("id" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Removed")))]
pub(crate) async fn admin_remove_passkey(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath((username, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .remove_passkey_as(&actor, &username, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/admin/accounts/{username}/grants/{client_id}`: the
/// app's consent and every token it holds for the account.
#[utoipa::path(delete, path = paths::ACCOUNT_GRANT, tag = "admin",
    params(("username" = String, Path), ("client_id" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Revoked")))]
pub(crate) async fn admin_revoke_grant(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath((username, client_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .revoke_grant_as(&actor, &username, &client_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- apps ----

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AdminApp {
    client_id: String,
    name: String,
    redirect_uris: Vec<String>,
    post_logout_uris: Vec<String>,
    /// Where logout tokens are POSTed (back-channel logout).
    #[serde(skip_serializing_if = "Option::is_none")]
    backchannel_logout_uri: Option<String>,
    public: bool,
    created_at: String,
}

impl From<AppSummary> for AdminApp {
    fn from(a: AppSummary) -> Self {
        Self {
            client_id: a.client_id,
            name: a.name,
            redirect_uris: a.redirect_uris,
            post_logout_uris: a.post_logout_uris,
            backchannel_logout_uri: a.backchannel_logout_uri,
            public: a.public,
            created_at: rfc3339(a.created_at),
        }
    }
}

/// `GET /api/v1/admin/apps`.
#[utoipa::path(get, path = paths::APPS, tag = "admin",
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "The registered OpenID Connect clients", body = Vec<AdminApp>)))]
pub(crate) async fn admin_list_apps(
    Admin(_): Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<AdminApp>>, ApiError> {
    let apps = state.services.apps().await?;
    Ok(Json(apps.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewAppRequest {
    name: String,
    redirect_uris: Vec<String>,
    /// Where logout may return to; absent or empty: the redirect URIs.
    #[serde(default)]
    post_logout_uris: Vec<String>,
    /// Where qrlogin POSTs a logout token when a person's session with the
    /// app ends (OpenID Connect Back-Channel Logout 1.0).
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
    /// A SPA or native app: no secret, PKCE required.
    #[serde(default)]
    public: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AddedAppBody {
    app: AdminApp,
    /// A confidential client's secret, shown this once.
    client_secret: Option<String>,
}

/// `POST /api/v1/admin/apps`.
#[utoipa::path(post, path = paths::APPS, tag = "admin", request_body = NewAppRequest,
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 201, description = "Registered", body = AddedAppBody)))]
pub(crate) async fn admin_add_app(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewAppRequest>,
) -> Result<Response, ApiError> {
    let added = state
        .services
        .add_app(
            &actor,
            NewApp {
                name: body.name,
                redirect_uris: body.redirect_uris,
                post_logout_uris: body.post_logout_uris,
                backchannel_logout_uri: body.backchannel_logout_uri,
                public: body.public,
            },
        )
        .await?;
    let body = AddedAppBody {
        app: added.app.into(),
        client_secret: added.secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SecretBody {
    /// Shown this once; the old secret no longer works.
    client_secret: String,
}

/// `POST /api/v1/admin/apps/{client_id}/secret`: a new secret for a
/// confidential client.
#[utoipa::path(post, path = paths::APP_SECRET, tag = "admin",
    params(("client_id" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "The new secret", body = SecretBody)))]
pub(crate) async fn admin_rotate_app_secret(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(client_id): ApiPath<String>,
) -> Result<Json<SecretBody>, ApiError> {
    let client_secret = state.services.rotate_app_secret(&actor, &client_id).await?;
    Ok(Json(SecretBody { client_secret }))
}

/// `DELETE /api/v1/admin/apps/{client_id}`: the client and every grant.
#[utoipa::path(delete, path = paths::APP, tag = "admin",
    params(("client_id" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Removed")))]
pub(crate) async fn admin_remove_app(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(client_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.services.remove_app(&actor, &client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit ----

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// A username (or the id of a removed account).
    account: Option<String>,
    /// An event name, e.g. `signed_in`.
    event: Option<String>,
    /// An app's client id.
    app: Option<String>,
    /// An address, exactly as recorded.
    address: Option<String>,
    /// Rows at or after this time: unix milliseconds.
    from: Option<u64>,
    /// Rows at or before this time: unix milliseconds.
    to: Option<u64>,
    /// From 1.
    #[param(minimum = 1)]
    page: Option<u32>,
    /// 1 to 100 (25 by default).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
    /// Export only: `csv` (the default) or `jsonl`.
    format: Option<String>,
}

impl AuditParams {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let event = match self.event.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(
                AuditEvent::parse(raw)
                    .ok_or_else(|| ApiError::BadRequest(format!("Unknown audit event {raw:?}.")))?,
            ),
        };
        Ok(AuditFilter {
            account: self.account.clone(),
            event,
            app: self.app.clone(),
            address: self.address.clone(),
            from: self.from,
            to: self.to,
        })
    }
}

/// One row of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditRow {
    id: i64,
    /// RFC 3339.
    at: String,
    /// Unix milliseconds.
    at_ms: u64,
    event: String,
    account_id: Option<i64>,
    login_id: Option<String>,
    session_id: Option<String>,
    client_id: Option<String>,
    ip: String,
    user_agent: String,
    /// Who acted, when not the account itself (`admin:NAME`, `token:NAME (ID)`, the operator).
    actor: Option<String>,
}

impl From<AuditRecord> for AuditRow {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id,
            at: rfc3339(r.at),
            at_ms: r.at,
            event: r.event.as_str().to_owned(),
            account_id: r.account_id,
            login_id: r.login_id,
            session_id: r.session_id,
            client_id: r.client_id,
            ip: r.ip,
            user_agent: r.user_agent,
            actor: r.actor,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    items: Vec<AuditRow>,
    page: u32,
    per_page: u32,
    total: u64,
}

/// `GET /api/v1/admin/audit`: the filtered rows, newest first, a page.
#[utoipa::path(get, path = paths::AUDIT, tag = "admin", params(AuditParams),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "One page of the rows, newest first", body = AuditPage)))]
pub(crate) async fn admin_audit(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let filter = params.filter()?;
    let page = state
        .services
        .audit_page(
            &filter,
            params.page.unwrap_or(1),
            params.per_page.unwrap_or(admin::DEFAULT_PER_PAGE),
        )
        .await?;
    Ok(Json(AuditPage {
        items: page.items.into_iter().map(Into::into).collect(),
        page: page.page,
        per_page: page.per_page,
        total: page.total,
    }))
}

/// The CSV columns of an export, in order.
const CSV_COLUMNS: [&str; 10] = [
    "id",
    "at",
    "event",
    "account_id",
    "client_id",
    "ip",
    "user_agent",
    "actor",
    "login_id",
    "session_id",
];

/// One CSV field (RFC 4180): quoted when it must be; a field a
/// spreadsheet would run as a formula is prefixed with `'`.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn csv_line(row: &AuditRow) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let fields = [
        row.id.to_string(),
        row.at.clone(),
        row.event.clone(),
        row.account_id.map(|id| id.to_string()).unwrap_or_default(),
        opt(&row.client_id),
        row.ip.clone(),
        row.user_agent.clone(),
        opt(&row.actor),
        opt(&row.login_id),
        opt(&row.session_id),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// `GET /api/v1/admin/audit/export?format=csv|jsonl&…`: exactly the rows
/// the same filters list, newest first (at most 100,000), as a download.
#[utoipa::path(get, path = paths::AUDIT_EXPORT, tag = "admin", params(AuditParams),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "CSV (a header line, then a row per line) or JSON Lines (an `AuditRow` per line)",
        content_type = "text/csv",
        headers(("Content-Disposition" = String, description = "attachment; filename=…")))))]
pub(crate) async fn admin_audit_export(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let jsonl = match params.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "jsonl" => true,
        other => {
            return Err(ApiError::BadRequest(format!(
                "Unknown export format {other:?}: use csv or jsonl."
            )))
        }
    };
    let filter = params.filter()?;
    let rows = state.services.audit_export(&filter).await?;
    let mut body = String::new();
    if !jsonl {
        body.push_str(&CSV_COLUMNS.join(","));
        body.push_str("\r\n");
    }
    for record in rows {
        let row = AuditRow::from(record);
        if jsonl {
            body.push_str(&serde_json::to_string(&row).map_err(ApiError::internal)?);
            body.push('\n');
        } else {
            body.push_str(&csv_line(&row));
        }
    }
    let (content_type, file) = if jsonl {
        ("application/jsonl", "qrlogin-audit.jsonl")
    } else {
        ("text/csv; charset=utf-8", "qrlogin-audit.csv")
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
                    .map_err(ApiError::internal)?,
            ),
        ],
        body,
    )
        .into_response())
}

// ---- status ----

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatusBody {
    version: String,
    /// `sqlite` or `postgres`.
    database: String,
    database_ok: bool,
    redis_configured: bool,
    /// Absent without Redis.
    redis_ok: Option<bool>,
    accounts: u64,
    administrators: u64,
    disabled_accounts: u64,
    sessions: u64,
    /// On the instance that answers.
    desktops_waiting: u64,
}

/// `GET /api/v1/admin/status`.
#[utoipa::path(get, path = paths::STATUS, tag = "admin",
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "Version, stores and their health, counts", body = StatusBody)))]
pub(crate) async fn admin_status(
    Admin(_): Admin,
    State(state): State<AppState>,
) -> Result<Json<StatusBody>, ApiError> {
    let s = state.services.admin_status().await?;
    Ok(Json(StatusBody {
        version: s.version.to_owned(),
        database: s.database.to_owned(),
        database_ok: s.database_ok,
        redis_configured: s.redis_configured,
        redis_ok: s.redis_ok,
        accounts: s.accounts,
        administrators: s.administrators,
        disabled_accounts: s.disabled_accounts,
        sessions: s.sessions,
        desktops_waiting: s.desktops_waiting,
    }))
}

// ---- tokens ----

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenBody {
    id: String,
    name: String,
    /// `read` (GET only) or `write`.
    scope: String,
    created_at: String,
    expires_at: String,
    created_by: String,
}

impl From<AdminTokenView> for TokenBody {
    fn from(t: AdminTokenView) -> Self {
        Self {
            id: t.id,
            name: t.name,
            scope: t.scope.as_str().to_owned(),
            created_at: rfc3339(t.created_at),
            expires_at: rfc3339(t.expires_at),
            created_by: t.created_by,
        }
    }
}

/// `GET /api/v1/admin/tokens`.
#[utoipa::path(get, path = paths::TOKENS, tag = "admin",
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 200, description = "The live admin API tokens (never the tokens themselves)", body = Vec<TokenBody>)))]
pub(crate) async fn admin_list_tokens(
    Admin(_): Admin,
    State(state): State<AppState>,
) -> Result<Json<Vec<TokenBody>>, ApiError> {
    let tokens = state.services.admin_tokens().await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewTokenRequest {
    name: String,
    /// `read` (the default) or `write`.
    scope: Option<String>,
    /// 90 by default, at most 365.
    #[schema(minimum = 1, maximum = 365)]
    valid_days: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NewTokenBody {
    token: TokenBody,
    /// `qra_…`, for `Authorization: Bearer`; shown this once.
    secret: String,
}

/// `POST /api/v1/admin/tokens`: only an administrator's session (with the
/// step-up) makes tokens, never a token.
#[utoipa::path(post, path = paths::TOKENS, tag = "admin", request_body = NewTokenRequest,
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 201, description = "The token, shown once", body = NewTokenBody)))]
pub(crate) async fn admin_add_token(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewTokenRequest>,
) -> Result<Response, ApiError> {
    let scope = match body.scope.as_deref() {
        None => TokenScope::Read,
        Some(raw) => TokenScope::parse(raw).ok_or_else(|| {
            ApiError::BadRequest(format!("Unknown scope {raw:?}: use read or write."))
        })?,
    };
    let (view, secret) = state
        .services
        .add_admin_token_as(
            &actor,
            &body.name,
            scope,
            body.valid_days.unwrap_or(admin::DEFAULT_TOKEN_DAYS),
        )
        .await?;
    let body = NewTokenBody {
        token: view.into(),
        secret: admin::token_text(&secret),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/admin/tokens/{id}`: it stops working at once.
#[utoipa::path(delete, path = paths::TOKEN, tag = "admin",
    params(("id" = String, Path)),
    security(("bearer" = []), ("session_cookie" = []), ("admin_token" = [])),
    responses((status = 204, description = "Revoked")))]
pub(crate) async fn admin_revoke_token(
    Admin(actor): Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.services.revoke_admin_token_as(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
        assert_eq!(csv_field("@x,y"), "\"'@x,y\"");
    }
}
