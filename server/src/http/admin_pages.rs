//! The admin console's port ([`AdminBackend`]): its pages and forms, over
//! the same administration services as the admin API. Who is looking is
//! decided first, on every call: nobody (or a disabled account) → sign in;
//! not an administrator → 403. A form must carry the session's CSRF token
//! (on top of the same-origin guard every post passes); the services ask
//! for the step-up themselves. A secret an action makes is kept for the
//! next page view (sealed, by session), never put into a URL.

use std::collections::HashMap;

use app::admin::{
    port::AdminBackend,
    views::{
        encode, AccountDetailView, AccountRow, AccountsView, AdminAction, AppRow, AuditFilterForm,
        AuditRow, AuditView, Console, Gate, GrantRow, InviteRow, PasskeyRow, SessionRow, Shown,
        StatusView, TokenRow,
    },
};
use async_trait::async_trait;
use axum::http::request::Parts;
use leptos::prelude::ServerFnError;

use super::{
    cookies::presented_token,
    error::ApiError,
    extract::caller,
    pages::{confirm_view, page_error},
    state::AppState,
    views,
};
use crate::{
    domain::{
        audit::AuditEvent,
        secret::Secret,
        time::{rfc3339, UnixMillis},
    },
    services::{
        admin::{
            token_text, AccountSummary, AdminActor, AdminError, AuditFilter, NewApp,
            PasskeySelection, TokenScope,
        },
        console,
        invites::{InviteKind, NewInvite},
    },
};

/// How many accounts, and audit records, a page lists.
const ACCOUNTS_PER_PAGE: u32 = 25;
const AUDIT_PER_PAGE: u32 = 50;

/// Who is looking, when it is not an administrator.
enum NotAdmin {
    SignIn,
    Forbidden,
}

impl<T> From<NotAdmin> for Gate<T> {
    fn from(refusal: NotAdmin) -> Self {
        match refusal {
            NotAdmin::SignIn => Gate::SignIn,
            NotAdmin::Forbidden => {
                // Also when a load is called directly, not by its page.
                if let Some(response) =
                    leptos::prelude::use_context::<leptos_axum::ResponseOptions>()
                {
                    response.set_status(axum::http::StatusCode::FORBIDDEN);
                }
                Gate::Forbidden
            }
        }
    }
}

/// An administrator looking, and the session token their browser holds.
struct Admin {
    actor: AdminActor,
    token: Secret,
}

/// `2026-12-01T10:00` (or with `:SS`), as `<input type="datetime-local">`
/// writes it, read as UTC; `end`: the last millisecond of that minute (or
/// second), for a "to" bound.
fn datetime_local_ms(raw: &str, end: bool) -> Option<UnixMillis> {
    let raw = raw.trim();
    let (date, time) = raw.split_once('T')?;
    let mut date = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.splitn(3, ':');
    let hour: i64 = time.next()?.parse().ok()?;
    let minute: i64 = time.next()?.parse().ok()?;
    let (second, rest): (i64, i64) = match time.next() {
        Some(s) => (s.split('.').next()?.parse().ok()?, 999),
        None => (0, 59_999),
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=month_days).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    if !valid {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000;
    let ms = if end { ms + rest } else { ms };
    u64::try_from(ms).ok()
}

/// The form's filters as the services (and the admin API) read them.
fn audit_filter(form: &AuditFilterForm) -> AuditFilter {
    let text = |value: &str| Some(value.trim().to_owned()).filter(|v| !v.is_empty());
    AuditFilter {
        account: text(&form.account),
        event: AuditEvent::parse(form.event.trim()),
        app: text(&form.app),
        address: text(&form.address),
        from: datetime_local_ms(&form.from, false),
        to: datetime_local_ms(&form.to, true),
    }
}

/// The filters as `GET /api/v1/admin/audit/export` reads them.
fn export_query(filter: &AuditFilter) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(account) = &filter.account {
        pairs.push(("account", account.clone()));
    }
    if let Some(event) = filter.event {
        pairs.push(("event", event.as_str().to_owned()));
    }
    if let Some(app) = &filter.app {
        pairs.push(("app", app.clone()));
    }
    if let Some(address) = &filter.address {
        pairs.push(("address", address.clone()));
    }
    if let Some(from) = filter.from {
        pairs.push(("from", from.to_string()));
    }
    if let Some(to) = filter.to {
        pairs.push(("to", to.to_string()));
    }
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pages(total: u64, per_page: u32) -> u32 {
    u32::try_from(total.div_ceil(u64::from(per_page.max(1))))
        .unwrap_or(u32::MAX)
        .max(1)
}

fn account_row(a: AccountSummary) -> AccountRow {
    AccountRow {
        username: a.username,
        display_name: a.display_name,
        admin: a.admin,
        disabled: a.disabled,
        created_at: rfc3339(u64::try_from(a.created_at).unwrap_or_default()),
        passkeys: a.passkeys as u64,
        sessions: a.sessions as u64,
    }
}

fn admin_error(err: AdminError) -> ServerFnError {
    page_error(ApiError::from(err))
}

impl AppState {
    /// The administrator looking, or why not.
    async fn admin(&self, request: &Parts) -> Result<Result<Admin, NotAdmin>, ServerFnError> {
        let https = self.public_url.is_https();
        let Some(token) = presented_token(&request.headers, https) else {
            return Ok(Err(NotAdmin::SignIn));
        };
        let Some(current) = self
            .services
            .accounts
            .current(&token)
            .await
            .map_err(page_error)?
        else {
            return Ok(Err(NotAdmin::SignIn));
        };
        if current.account.disabled {
            return Ok(Err(NotAdmin::SignIn));
        }
        let caller = caller(request, &self.trusted_proxies);
        match self.services.admin_by_session(&current, &caller).await {
            Ok(actor) => Ok(Ok(Admin { actor, token })),
            Err(AdminError::NotSignedIn) => Ok(Err(NotAdmin::SignIn)),
            Err(AdminError::NotAdmin) => Ok(Err(NotAdmin::Forbidden)),
            Err(e) => Err(admin_error(e)),
        }
    }

    /// A console page of `view` for `admin`, with the secret kept for it.
    async fn console<T>(&self, admin: &Admin, view: T) -> Result<Gate<T>, ServerFnError> {
        let AdminActor::Session { current, .. } = &admin.actor else {
            return Err(page_error(ApiError::NotSignedIn));
        };
        let confirmation = self
            .services
            .passkeys
            .confirmation(current)
            .await
            .map_err(page_error)?;
        let shown = self
            .services
            .take_kept(&admin.token)
            .await
            .map_err(page_error)?
            .and_then(|json| serde_json::from_str::<Shown>(&json).ok());
        Ok(Gate::Ready(Console {
            me: current.account.to_api(),
            csrf: console::csrf_token(&admin.token),
            confirm: confirm_view(&confirmation),
            shown,
            view,
        }))
    }

    /// Keeps `shown` for the administrator's next page view.
    async fn show_next(&self, admin: &Admin, shown: &Shown) -> Result<(), ServerFnError> {
        let json = serde_json::to_string(shown).map_err(|e| page_error(ApiError::internal(e)))?;
        self.services
            .keep_for_next_view(&admin.token, &json)
            .await
            .map_err(page_error)
    }

    fn invite_shown(&self, made: &NewInvite) -> Shown {
        Shown::Invite {
            username: made.account.username.clone(),
            link: format!(
                "{}/invite/{}",
                self.public_url.as_str().trim_end_matches('/'),
                made.token.encode()
            ),
            reset: made.invite.kind == InviteKind::Reset,
            expires_at: rfc3339(made.invite.expires_at),
        }
    }

    /// Carries out `action` for `admin`; what it makes to show, if anything.
    async fn carry_out(
        &self,
        admin: &Admin,
        action: AdminAction,
    ) -> Result<Option<Shown>, AdminError> {
        let services = &self.services;
        let actor = &admin.actor;
        Ok(match action {
            AdminAction::CreateAccount {
                username,
                display_name,
                admin,
            } => {
                let display_name = Some(display_name.trim()).filter(|n| !n.is_empty());
                let made = services
                    .create_account(actor, username.trim(), display_name, admin, None)
                    .await?;
                Some(self.invite_shown(&made))
            }
            AdminAction::Invite { username } => {
                let made = services.invite_account(actor, &username, None).await?;
                Some(self.invite_shown(&made))
            }
            AdminAction::Reset {
                username,
                all,
                passkeys,
            } => {
                let selection = if all {
                    PasskeySelection::All
                } else {
                    PasskeySelection::Only(passkeys)
                };
                let made = services
                    .reset_account_for_lost_phone(actor, &username, selection, None)
                    .await?;
                Some(self.invite_shown(&made))
            }
            AdminAction::Disable { username } => {
                services.disable_account_as(actor, &username).await?;
                None
            }
            AdminAction::Enable { username } => {
                services.enable_account_as(actor, &username).await?;
                None
            }
            AdminAction::SetAdmin { username, admin } => {
                services.set_admin_as(actor, &username, admin).await?;
                None
            }
            AdminAction::Remove { username } => {
                services.remove_account_as(actor, &username).await?;
                None
            }
            AdminAction::RevokeSession {
                username,
                session_id,
            } => {
                services
                    .revoke_session_as(actor, &username, &session_id)
                    .await?;
                None
            }
            AdminAction::RemovePasskey {
                username,
                passkey_id,
            } => {
                services
                    .remove_passkey_as(actor, &username, &passkey_id)
                    .await?;
                None
            }
            AdminAction::RevokeGrant {
                username,
                client_id,
            } => {
                services
                    .revoke_grant_as(actor, &username, &client_id)
                    .await?;
                None
            }
            AdminAction::AddApp {
                name,
                redirect_uris,
                post_logout_uris,
                backchannel_logout_uri,
                public,
            } => {
                let added = services
                    .add_app(
                        actor,
                        NewApp {
                            name,
                            redirect_uris,
                            post_logout_uris,
                            backchannel_logout_uri,
                            public,
                        },
                    )
                    .await?;
                Some(Shown::AppSecret {
                    name: added.app.name,
                    client_id: added.app.client_id,
                    secret: added.secret,
                })
            }
            AdminAction::RotateSecret { client_id } => {
                let secret = services.rotate_app_secret(actor, &client_id).await?;
                let name = services
                    .apps()
                    .await?
                    .into_iter()
                    .find(|app| app.client_id == client_id)
                    .map_or_else(|| client_id.clone(), |app| app.name);
                Some(Shown::AppSecret {
                    name,
                    client_id,
                    secret: Some(secret),
                })
            }
            AdminAction::RemoveApp { client_id } => {
                services.remove_app(actor, &client_id).await?;
                None
            }
            AdminAction::AddToken {
                name,
                write,
                valid_days,
            } => {
                let scope = if write {
                    TokenScope::Write
                } else {
                    TokenScope::Read
                };
                let (view, secret) = services
                    .add_admin_token_as(actor, &name, scope, valid_days)
                    .await?;
                Some(Shown::Token {
                    name: view.name,
                    token: token_text(&secret),
                })
            }
            AdminAction::RevokeToken { id } => {
                services.revoke_admin_token_as(actor, &id).await?;
                None
            }
        })
    }
}

#[async_trait]
impl AdminBackend for AppState {
    async fn status(&self, request: &Parts) -> Result<Gate<StatusView>, ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(refusal) => return Ok(refusal.into()),
        };
        let status = self.services.admin_status().await.map_err(admin_error)?;
        let view = StatusView {
            version: status.version.to_owned(),
            database: status.database.to_owned(),
            database_ok: status.database_ok,
            redis_ok: status
                .redis_configured
                .then_some(status.redis_ok.unwrap_or(false)),
            accounts: status.accounts,
            sessions: status.sessions,
            desktops_waiting: status.desktops_waiting,
        };
        self.console(&admin, view).await
    }

    async fn accounts(
        &self,
        request: &Parts,
        search: &str,
        page: u32,
    ) -> Result<Gate<AccountsView>, ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(refusal) => return Ok(refusal.into()),
        };
        let found = self
            .services
            .accounts_page(search, page, ACCOUNTS_PER_PAGE)
            .await
            .map_err(admin_error)?;
        let view = AccountsView {
            page: found.page,
            pages: pages(found.total, found.per_page),
            total: found.total,
            rows: found.items.into_iter().map(account_row).collect(),
        };
        self.console(&admin, view).await
    }

    async fn account(
        &self,
        request: &Parts,
        username: &str,
    ) -> Result<Gate<Option<AccountDetailView>>, ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(refusal) => return Ok(refusal.into()),
        };
        let detail = match self.services.account_detail(username).await {
            Ok(detail) => detail,
            Err(AdminError::NoSuchAccount(_)) => return self.console(&admin, None).await,
            Err(e) => return Err(admin_error(e)),
        };
        let a = &detail.account;
        let view = AccountDetailView {
            account: AccountRow {
                username: a.username.clone(),
                display_name: a.display_name.clone(),
                admin: a.admin,
                disabled: a.disabled,
                created_at: rfc3339(u64::try_from(a.created_at).unwrap_or_default()),
                passkeys: detail.passkeys.len() as u64,
                sessions: detail.sessions.len() as u64,
            },
            sessions: detail
                .sessions
                .iter()
                .map(|s| {
                    let info = views::session_info(s, "");
                    SessionRow {
                        id: info.id,
                        browser: info.browser,
                        os: info.os,
                        ip: info.ip,
                        method: info.method,
                        created_at: info.created_at,
                        last_seen_at: info.last_seen_at,
                    }
                })
                .collect(),
            passkeys: detail
                .passkeys
                .iter()
                .map(|p| PasskeyRow {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    created_at: rfc3339(p.created_at),
                    last_used_at: p.last_used_at.map(rfc3339),
                })
                .collect(),
            grants: detail
                .grants
                .iter()
                .map(|g| GrantRow {
                    client_id: g.client_id.clone(),
                    name: g.client_name.clone(),
                    scopes: g.scopes.join(" "),
                })
                .collect(),
            invites: detail
                .invites
                .iter()
                .map(|i| InviteRow {
                    reset: i.kind == InviteKind::Reset,
                    created_at: rfc3339(i.created_at),
                    expires_at: rfc3339(i.expires_at),
                })
                .collect(),
        };
        self.console(&admin, Some(view)).await
    }

    async fn apps(&self, request: &Parts) -> Result<Gate<Vec<AppRow>>, ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(refusal) => return Ok(refusal.into()),
        };
        let apps = self.services.apps().await.map_err(admin_error)?;
        let view = apps
            .into_iter()
            .map(|app| AppRow {
                client_id: app.client_id,
                name: app.name,
                public: app.public,
                redirect_uris: app.redirect_uris,
                post_logout_uris: app.post_logout_uris,
                backchannel_logout_uri: app.backchannel_logout_uri,
            })
            .collect();
        self.console(&admin, view).await
    }

    async fn audit(
        &self,
        request: &Parts,
        form: &AuditFilterForm,
        page: u32,
    ) -> Result<Gate<AuditView>, ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(refusal) => return Ok(refusal.into()),
        };
        let filter = audit_filter(form);
        let found = self
            .services
            .audit_page(&filter, page, AUDIT_PER_PAGE)
            .await
            .map_err(admin_error)?;
        // Records name accounts by id; the page names them by username.
        let names: HashMap<i64, String> = self
            .services
            .accounts
            .list_accounts()
            .await
            .map_err(page_error)?
            .into_iter()
            .map(|a| (a.id, a.username))
            .collect();
        let view = AuditView {
            page: found.page,
            pages: pages(found.total, found.per_page),
            total: found.total,
            rows: found
                .items
                .into_iter()
                .map(|r| AuditRow {
                    at: rfc3339(r.at),
                    event: r.event.as_str().to_owned(),
                    account: r
                        .account_id
                        .map(|id| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")))
                        .unwrap_or_default(),
                    app: r.client_id.unwrap_or_default(),
                    address: r.ip,
                    actor: r.actor.unwrap_or_default(),
                    user_agent: r.user_agent,
                })
                .collect(),
            events: AuditEvent::ALL
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
            export_query: export_query(&filter),
        };
        self.console(&admin, view).await
    }

    async fn tokens(&self, request: &Parts) -> Result<Gate<Vec<TokenRow>>, ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(refusal) => return Ok(refusal.into()),
        };
        let tokens = self.services.admin_tokens().await.map_err(admin_error)?;
        let view = tokens
            .into_iter()
            .map(|t| TokenRow {
                id: t.id,
                name: t.name,
                write: t.scope == TokenScope::Write,
                created_at: rfc3339(t.created_at),
                expires_at: rfc3339(t.expires_at),
            })
            .collect();
        self.console(&admin, view).await
    }

    async fn act(
        &self,
        request: &Parts,
        csrf: &str,
        action: AdminAction,
    ) -> Result<(), ServerFnError> {
        let admin = match self.admin(request).await? {
            Ok(admin) => admin,
            Err(NotAdmin::SignIn) => return Err(page_error(ApiError::NotSignedIn)),
            Err(NotAdmin::Forbidden) => return Err(admin_error(AdminError::NotAdmin)),
        };
        if !console::csrf_matches(&admin.token, csrf) {
            tracing::warn!(
                admin = %admin.actor.caller_label(),
                "admin console form without its CSRF token refused"
            );
            return Err(page_error(ApiError::CrossSite));
        }
        if let AdminAction::Reset {
            all: false,
            passkeys,
            ..
        } = &action
        {
            if passkeys.is_empty() {
                return Err(ServerFnError::new("no_passkeys"));
            }
        }
        match self.carry_out(&admin, action).await {
            Ok(Some(shown)) => self.show_next(&admin, &shown).await,
            Ok(None) => Ok(()),
            Err(e) => Err(admin_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_reads_as_utc() {
        assert_eq!(datetime_local_ms("1970-01-01T00:00", false), Some(0));
        assert_eq!(datetime_local_ms("1970-01-01T00:00", true), Some(59_999));
        // 2026-12-01T10:00:00Z
        assert_eq!(
            datetime_local_ms("2026-12-01T10:00", false),
            Some(1_796_119_200_000)
        );
        assert_eq!(
            datetime_local_ms("2026-12-01T10:00:30", true),
            Some(1_796_119_230_999)
        );
        assert_eq!(datetime_local_ms("2026-02-30T10:00", false), None);
        assert!(datetime_local_ms("2028-02-29T10:00", false).is_some());
        assert_eq!(datetime_local_ms("yesterday", false), None);
        assert_eq!(datetime_local_ms("2026-13-01T10:00", false), None);
        assert_eq!(datetime_local_ms("", false), None);
    }

    #[test]
    fn the_export_gets_the_same_filters() {
        let filter = audit_filter(&AuditFilterForm {
            account: " bob ".into(),
            event: "signed_in".into(),
            from: "1970-01-01T00:01".into(),
            ..AuditFilterForm::default()
        });
        assert_eq!(
            export_query(&filter),
            "account=bob&event=signed_in&from=60000"
        );
        assert_eq!(audit_filter(&AuditFilterForm::default()).event, None);
    }
}
