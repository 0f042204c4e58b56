//! Administration: what the admin console (`/admin`) and the admin API
//! (`/api/v1/admin/…`) do, for an administrator's session or an admin API
//! token. Every operation that changes something checks who acts (an
//! enabled administrator, or a `write` token), asks a session for the
//! fresh proof of presence credential changes need (the step-up), and is
//! written to the audit trail with who did it (the [`Caller::actor`]).
//!
//! Differences from the shared contract (for the console's author):
//! - `admin_by_session` and `admin_by_token` also take the request's
//!   `&Caller` (address and browser, for the audit trail and the failed
//!   token's rate limit); the actor keeps it.
//! - Every changing method checks `may_change` itself (a read token is
//!   refused, a session needs the step-up): calling [`Services::step_up`]
//!   first is not needed (it tells a form early whether to ask for proof).
//! - `add_admin_token` returns the view and the [`Secret`]; the token as
//!   shown is [`token_text`] of it (`qra_…`).
//! - `AdminActor` has a third variant, `Operator` (the `qrlogin` command
//!   on the server: no step-up, may write); match with a `_` arm.
//! - `AdminError::LastAdmin` also covers the admin acting on their own
//!   account: `OwnAccount` (409 `own_account`).

use std::{num::NonZeroU32, sync::Arc};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{
    accounts::{AccountError, CurrentSession},
    invites::{InviteKind, NewInvite, DEFAULT_VALID_HOURS, MAX_VALID_HOURS},
    limits::{ip_key, LimitError, RateLimited},
    oidc::ClientAdminError,
    passkeys::{PasskeyError, PasskeyInfo},
    AccountAdminError, Services,
};
use crate::{
    domain::{
        account::{Account, Session},
        audit::{AuditEvent, AuditRecord},
        caller::Caller,
        oidc::{Client, LogoutUris},
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    storage::{parse_record as parse, AuditQuery, SharedLimiter, StoreError, Stores},
};

/// The record kind of admin API tokens: `{hash of the token}` → [`StoredToken`].
const TOKEN_KIND: &str = "admin_token";
/// What starts every admin API token, so that one is recognisable.
pub const TOKEN_PREFIX: &str = "qra_";
/// How long a token is valid unless its maker says otherwise.
pub const DEFAULT_TOKEN_DAYS: u64 = 90;
/// No token outlives a year.
pub const MAX_TOKEN_DAYS: u64 = 365;
/// A token's id: this many characters of its hash (public: lists, revoking).
const TOKEN_ID_LEN: usize = 16;
/// A page of a list, unless asked otherwise.
pub const DEFAULT_PER_PAGE: u32 = 25;
/// The most a page holds.
pub const MAX_PER_PAGE: u32 = 100;
/// The most rows an audit export holds (newest first): a bigger trail is
/// exported in slices of time (`from`/`to`).
pub const MAX_EXPORT_ROWS: u32 = 100_000;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// Who acts: an administrator's session or an admin API token.
#[derive(Debug, Clone)]
pub enum AdminActor {
    Session {
        current: CurrentSession,
        caller: Caller,
    },
    Token {
        token: AdminTokenView,
        caller: Caller,
    },
    /// The operator, with a shell on the server (`qrlogin user …`).
    Operator { caller: Caller },
}

impl AdminActor {
    /// The operator's commands, as `caller` (its actor kept if set).
    pub fn operator(caller: &Caller) -> Self {
        Self::Operator {
            caller: caller.clone(),
        }
    }

    /// Who did it, as the audit trail names it.
    pub fn caller_label(&self) -> String {
        match self {
            Self::Session { current, .. } => format!("admin:{}", current.account.username),
            Self::Token { token, .. } => format!("token:{} ({})", token.name, token.id),
            Self::Operator { caller } => caller
                .actor
                .clone()
                .unwrap_or_else(|| "operator".to_owned()),
        }
    }

    /// The request's caller, acting as [`Self::caller_label`].
    pub fn caller(&self) -> Caller {
        let (Self::Session { caller, .. } | Self::Token { caller, .. } | Self::Operator { caller }) =
            self;
        caller.acting_as(&self.caller_label())
    }

    /// The administrator's account (a token or the operator has none).
    pub fn account(&self) -> Option<&Account> {
        match self {
            Self::Session { current, .. } => Some(&current.account),
            Self::Token { .. } | Self::Operator { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("sign in first, as an administrator")]
    NotSignedIn,
    /// An admin token that is unknown, expired or revoked.
    #[error("the admin API token is unknown, expired or revoked")]
    InvalidToken,
    #[error("this needs an administrator")]
    NotAdmin,
    #[error("confirm it is you first, with your passkey or password")]
    ConfirmFirst,
    #[error("this admin API token may only read")]
    ReadOnlyToken,
    /// Making tokens needs an administrator's session: a token cannot mint
    /// tokens (a leaked one could otherwise outlive its revocation).
    #[error("admin API tokens are made by an administrator's session, not by a token")]
    SessionOnly,
    #[error("no account named {0}")]
    NoSuchAccount(String),
    #[error("no client with id {0:?}")]
    NoSuchApp(String),
    #[error("no admin API token with id {0:?}")]
    NoSuchToken(String),
    /// A session, passkey or grant the account does not have.
    #[error("the account has no such {0}")]
    NotFound(&'static str),
    #[error("an account named {0} already exists")]
    UsernameTaken(String),
    #[error("this would leave no enabled administrator")]
    LastAdmin,
    #[error("administrators cannot disable, remove or demote their own account")]
    OwnAccount,
    #[error("{0}")]
    InvalidInput(String),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Account(AccountError),
    #[error(transparent)]
    Passkey(PasskeyError),
    #[error(transparent)]
    Oidc(ClientAdminError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AccountError> for AdminError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::NoSuchAccount(name) => Self::NoSuchAccount(name),
            AccountError::UsernameTaken(name) => Self::UsernameTaken(name),
            AccountError::InvalidInput(e) => Self::InvalidInput(e.to_string()),
            AccountError::SessionNotFound => Self::NotFound("session"),
            AccountError::RateLimited(e) => Self::RateLimited(e),
            AccountError::Store(e) => Self::Store(e),
            e => Self::Account(e),
        }
    }
}

impl From<PasskeyError> for AdminError {
    fn from(err: PasskeyError) -> Self {
        match err {
            PasskeyError::NotFound => Self::NotFound("passkey"),
            PasskeyError::ConfirmFirst => Self::ConfirmFirst,
            PasskeyError::InvalidInput(e) => Self::InvalidInput(e.to_string()),
            PasskeyError::RateLimited(e) => Self::RateLimited(e),
            PasskeyError::Store(e) => Self::Store(e),
            e => Self::Passkey(e),
        }
    }
}

impl From<ClientAdminError> for AdminError {
    fn from(err: ClientAdminError) -> Self {
        match err {
            ClientAdminError::Invalid(e) => Self::InvalidInput(e.to_string()),
            ClientAdminError::NoSuchClient(id) => Self::NoSuchApp(id),
            e @ ClientAdminError::PublicClient => Self::InvalidInput(e.to_string()),
            ClientAdminError::Store(e) => Self::Store(e),
            e @ ClientAdminError::Internal(_) => Self::Oidc(e),
        }
    }
}

impl From<AccountAdminError> for AdminError {
    fn from(err: AccountAdminError) -> Self {
        match err {
            AccountAdminError::Account(e) => e.into(),
            AccountAdminError::Passkey(e) => e.into(),
            AccountAdminError::Store(e) => e.into(),
        }
    }
}

impl From<LimitError> for AdminError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Store(store) => Self::Store(store),
        }
    }
}

/// One page of a longer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// From 1.
    pub page: u32,
    pub per_page: u32,
    /// How many there are in all.
    pub total: u64,
}

/// `page` from 1 and `per_page` within 1..=[`MAX_PER_PAGE`].
fn page_bounds(page: u32, per_page: u32) -> (u32, u32) {
    let per_page = if per_page == 0 {
        DEFAULT_PER_PAGE
    } else {
        per_page.min(MAX_PER_PAGE)
    };
    (page.max(1), per_page)
}

/// An account as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSummary {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub admin: bool,
    pub disabled: bool,
    pub created_at: i64,
    pub passkeys: usize,
    pub sessions: usize,
}

/// An app the account holds a grant or a consent for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppGrant {
    pub client_id: String,
    pub client_name: String,
    /// The scopes its live grants hold (empty: consented, no live grant).
    pub scopes: Vec<String>,
    /// When the person first approved it, if the consent is kept.
    pub granted_at: Option<UnixMillis>,
}

/// A live invite of an account (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInviteView {
    pub kind: InviteKind,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// Everything about one account.
#[derive(Debug, Clone)]
pub struct AccountDetail {
    pub account: Account,
    pub sessions: Vec<Session>,
    pub passkeys: Vec<PasskeyInfo>,
    pub grants: Vec<AppGrant>,
    pub invites: Vec<LiveInviteView>,
}

/// Which passkeys a reset removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasskeySelection {
    All,
    /// These (ids as listed); the rest stay.
    Only(Vec<String>),
}

/// An OpenID Connect client as the admin lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSummary {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// Where logout may return to (its redirect URIs when it has none of
    /// its own).
    pub post_logout_uris: Vec<String>,
    /// Where logout tokens go (back-channel logout), if anywhere.
    pub backchannel_logout_uri: Option<String>,
    pub public: bool,
    pub created_at: UnixMillis,
}

impl AppSummary {
    fn of(client: &Client) -> Self {
        Self {
            client_id: client.id.clone(),
            name: client.name.clone(),
            redirect_uris: client.redirect_uris.clone(),
            post_logout_uris: client.logout_uris().to_vec(),
            backchannel_logout_uri: client.backchannel_logout_uri.clone(),
            public: client.is_public(),
            created_at: client.created_at,
        }
    }
}

/// An app to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// Empty: logout returns to the redirect URIs.
    pub post_logout_uris: Vec<String>,
    /// Where logout tokens go (back-channel logout); `None`: nowhere.
    pub backchannel_logout_uri: Option<String>,
    pub public: bool,
}

/// An app just registered: a confidential one's secret is shown this once.
#[derive(Debug, Clone)]
pub struct AddedApp {
    pub app: AppSummary,
    pub secret: Option<String>,
}

/// Which audit rows: every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// A username (or an account id, for a removed account's rows).
    pub account: Option<String>,
    pub event: Option<AuditEvent>,
    /// A client id.
    pub app: Option<String>,
    /// An address, exactly as recorded.
    pub address: Option<String>,
    pub from: Option<UnixMillis>,
    pub to: Option<UnixMillis>,
}

/// The server as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminStatus {
    pub version: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    pub database_ok: bool,
    pub redis_configured: bool,
    /// `None` without Redis.
    pub redis_ok: Option<bool>,
    pub accounts: u64,
    pub administrators: u64,
    pub disabled_accounts: u64,
    pub sessions: u64,
    /// Desktops waiting on this instance now.
    pub desktops_waiting: u64,
}

/// What an admin API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// GET only.
    Read,
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// A token as stored, under its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    name: String,
    scope: TokenScope,
    created_at: UnixMillis,
    expires_at: UnixMillis,
    created_by: String,
}

/// A live admin API token, as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminTokenView {
    pub id: String,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// Who made it (`admin:alice`, `operator`).
    pub created_by: String,
}

impl AdminTokenView {
    fn of(key: &str, stored: StoredToken) -> Self {
        Self {
            id: key.chars().take(TOKEN_ID_LEN).collect(),
            name: stored.name,
            scope: stored.scope,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
            created_by: stored.created_by,
        }
    }
}

/// The token as shown once and sent as `Authorization: Bearer`.
pub fn token_text(secret: &Secret) -> String {
    format!("{TOKEN_PREFIX}{}", secret.encode())
}

/// The record key of a token: its hash (base64url).
fn token_key(secret: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(secret.hash().0)
}

/// What the status page needs of the stores beyond the services.
#[derive(Clone)]
pub struct AdminParts {
    database: &'static str,
    limiter: Option<Arc<dyn SharedLimiter>>,
}

impl AdminParts {
    pub fn of(stores: &Stores) -> Self {
        Self {
            database: stores.database,
            limiter: stores.limiter.clone(),
        }
    }
}

/// The valid lifetime of an invite, in ms.
fn invite_ms(valid_hours: Option<u64>) -> Result<u64, AdminError> {
    let hours = valid_hours.unwrap_or(DEFAULT_VALID_HOURS);
    if hours == 0 || hours > MAX_VALID_HOURS {
        return Err(AdminError::InvalidInput(format!(
            "an invite is valid 1 to {MAX_VALID_HOURS} hours"
        )));
    }
    Ok(hours * 60 * 60 * 1000)
}

/// Who may act, and the step-up.
impl Services {
    /// The administrator behind a session: an enabled account with the
    /// admin flag (a disabled account's sessions are ended anyway).
    pub async fn admin_by_session(
        &self,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<AdminActor, AdminError> {
        // The flag as stored now (the session's copy may be cached).
        let account = self
            .accounts
            .any_account_by_id(current.account.id)
            .await?
            .ok_or(AdminError::NotSignedIn)?;
        if !account.admin || account.disabled {
            return Err(AdminError::NotAdmin);
        }
        Ok(AdminActor::Session {
            current: CurrentSession {
                session: current.session.clone(),
                account,
            },
            caller: caller.clone(),
        })
    }

    /// The admin API token `bearer` (`qra_…`), if live; `write`: the
    /// request changes something, which a `read` token may not. Failures
    /// count against the address's token allowance (429 once spent).
    pub async fn admin_by_token(
        &self,
        bearer: &str,
        write: bool,
        caller: &Caller,
    ) -> Result<AdminActor, AdminError> {
        let found = match bearer.strip_prefix(TOKEN_PREFIX).and_then(Secret::decode) {
            Some(secret) => self.live_token(&secret).await?,
            None => None,
        };
        let Some(token) = found else {
            self.passkeys
                .limits()
                .token
                .check(&ip_key(caller.ip))
                .await?;
            tracing::info!(ip = %caller.ip_string(), "unknown, expired or revoked admin API token");
            return Err(AdminError::InvalidToken);
        };
        if write && token.scope == TokenScope::Read {
            return Err(AdminError::ReadOnlyToken);
        }
        Ok(AdminActor::Token {
            token,
            caller: caller.clone(),
        })
    }

    async fn live_token(&self, secret: &Secret) -> Result<Option<AdminTokenView>, StoreError> {
        let key = token_key(secret);
        let store = self.passkeys.provider_store();
        let Some(record) = store.get(TOKEN_KIND, &key, now_millis()).await? else {
            return Ok(None);
        };
        let Some(stored) = parse::<StoredToken>(&record) else {
            return Ok(None);
        };
        // The key is the hash: found means equal, compared again in
        // constant time for good measure.
        let same: bool = key.as_bytes().ct_eq(token_key(secret).as_bytes()).into();
        Ok(same.then(|| AdminTokenView::of(&key, stored)))
    }

    /// A session's fresh proof of presence (as a credential change needs);
    /// a token needs none (it is its own proof).
    pub async fn step_up(&self, actor: &AdminActor) -> Result<(), AdminError> {
        match actor {
            AdminActor::Session { current, .. } => {
                Ok(self.passkeys.require_fresh_proof(current).await?)
            }
            AdminActor::Token { .. } | AdminActor::Operator { .. } => Ok(()),
        }
    }

    /// What every change checks: a `write` token, or a session with the
    /// step-up.
    async fn may_change(&self, actor: &AdminActor) -> Result<(), AdminError> {
        if let AdminActor::Token { token, .. } = actor {
            if token.scope == TokenScope::Read {
                return Err(AdminError::ReadOnlyToken);
            }
        }
        self.step_up(actor).await
    }

    /// Refuses what would leave no enabled administrator, or have an
    /// administrator shut themselves out.
    async fn keep_an_admin(&self, actor: &AdminActor, target: &Account) -> Result<(), AdminError> {
        if actor.account().is_some_and(|me| me.id == target.id) {
            return Err(AdminError::OwnAccount);
        }
        if target.admin && !target.disabled {
            let others = self
                .accounts
                .list_accounts()
                .await?
                .iter()
                .filter(|a| a.admin && !a.disabled && a.id != target.id)
                .count();
            if others == 0 {
                return Err(AdminError::LastAdmin);
            }
        }
        Ok(())
    }
}

/// Accounts.
impl Services {
    /// Accounts whose username or display name contains `search` (any
    /// case), by id, one page.
    pub async fn accounts_page(
        &self,
        search: &str,
        page: u32,
        per_page: u32,
    ) -> Result<Page<AccountSummary>, AdminError> {
        let (page, per_page) = page_bounds(page, per_page);
        let needle = search.trim().to_lowercase();
        let matching: Vec<Account> = self
            .accounts
            .list_accounts()
            .await?
            .into_iter()
            .filter(|a| {
                needle.is_empty()
                    || a.username.to_lowercase().contains(&needle)
                    || a.display_name.to_lowercase().contains(&needle)
            })
            .collect();
        let total = matching.len() as u64;
        let skip = (page as usize - 1).saturating_mul(per_page as usize);
        let mut items = Vec::new();
        for account in matching.into_iter().skip(skip).take(per_page as usize) {
            let passkeys = self.passkeys.list(account.id).await?.len();
            let sessions = self.accounts.sessions_of(account.id).await?.len();
            items.push(AccountSummary {
                id: account.id,
                username: account.username,
                display_name: account.display_name,
                admin: account.admin,
                disabled: account.disabled,
                created_at: account.created_at,
                passkeys,
                sessions,
            });
        }
        Ok(Page {
            items,
            page,
            per_page,
            total,
        })
    }

    /// The account named `username`, its sessions, passkeys, apps and live
    /// invites.
    pub async fn account_detail(&self, username: &str) -> Result<AccountDetail, AdminError> {
        let account = self.accounts.account_named(username).await?;
        let sessions = self.accounts.sessions_of(account.id).await?;
        let passkeys = self.passkeys.list(account.id).await?;
        let grants = self.app_grants(account.id).await?;
        let invites = self
            .invites()
            .await?
            .into_iter()
            .filter(|live| live.invite.account_id == account.id)
            .map(|live| LiveInviteView {
                kind: live.invite.kind,
                created_at: live.invite.created_at,
                expires_at: live.invite.expires_at,
            })
            .collect();
        Ok(AccountDetail {
            account,
            sessions,
            passkeys,
            grants,
            invites,
        })
    }

    /// The apps the account consented to or holds grants for.
    async fn app_grants(&self, account_id: i64) -> Result<Vec<AppGrant>, AdminError> {
        let mut grants: Vec<AppGrant> = self
            .oidc
            .consents(account_id)
            .await?
            .into_iter()
            .map(|c| AppGrant {
                client_id: c.client_id,
                client_name: c.client_name,
                scopes: Vec::new(),
                granted_at: Some(c.granted_at),
            })
            .collect();
        for (client_id, scopes) in self.oidc.granted_clients(account_id).await? {
            if let Some(known) = grants.iter_mut().find(|g| g.client_id == client_id) {
                known.scopes = scopes;
                continue;
            }
            let Some(client) = self.oidc.client(&client_id).await? else {
                continue;
            };
            grants.push(AppGrant {
                client_id,
                client_name: client.name,
                scopes,
                granted_at: None,
            });
        }
        Ok(grants)
    }

    /// Makes an account with no way in yet and its enroll invite (shown
    /// once): the person sets up a passkey (or a password where passkeys
    /// are off) by opening it.
    pub async fn create_account(
        &self,
        actor: &AdminActor,
        username: &str,
        display_name: Option<&str>,
        admin: bool,
        valid_hours: Option<u64>,
    ) -> Result<NewInvite, AdminError> {
        self.may_change(actor).await?;
        let valid_ms = invite_ms(valid_hours)?;
        match self.accounts.account_named(username).await {
            Ok(existing) => return Err(AdminError::UsernameTaken(existing.username)),
            Err(AccountError::NoSuchAccount(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let caller = actor.caller();
        let mut invite = self
            .invite(
                username,
                display_name,
                InviteKind::Enroll,
                valid_ms,
                &caller,
            )
            .await?;
        self.audit.record(
            AuditEvent::AccountCreated,
            None,
            Some(invite.account.id),
            &caller,
        );
        if admin {
            self.accounts
                .set_admin(&invite.account, true, &caller)
                .await?;
            invite.account.admin = true;
        }
        Ok(invite)
    }

    /// A new enroll invite for an account that cannot sign in yet (its
    /// earlier invites are revoked); one that can needs a reset.
    pub async fn invite_account(
        &self,
        actor: &AdminActor,
        username: &str,
        valid_hours: Option<u64>,
    ) -> Result<NewInvite, AdminError> {
        self.may_change(actor).await?;
        let valid_ms = invite_ms(valid_hours)?;
        let account = self.accounts.account_named(username).await?;
        if account.disabled {
            return Err(AdminError::InvalidInput(
                "this account is disabled: enable it first".into(),
            ));
        }
        if self.passkeys.has_way_in(account.id).await? {
            return Err(AdminError::InvalidInput(
                "this account can already sign in: reset it to give it a new way in".into(),
            ));
        }
        let caller = actor.caller();
        self.uninvite(username, &caller).await?;
        Ok(self
            .invite(username, None, InviteKind::Enroll, valid_ms, &caller)
            .await?)
    }

    /// A lost phone: ends every session and app grant of the account,
    /// removes the chosen passkeys, revokes its older invites and issues a
    /// reset invite (shown once). Unknown passkey ids refuse the whole
    /// reset before anything changes.
    pub async fn reset_account_for_lost_phone(
        &self,
        actor: &AdminActor,
        username: &str,
        passkeys: PasskeySelection,
        valid_hours: Option<u64>,
    ) -> Result<NewInvite, AdminError> {
        self.may_change(actor).await?;
        let valid_ms = invite_ms(valid_hours)?;
        let account = self.accounts.account_named(username).await?;
        if account.disabled {
            return Err(AdminError::InvalidInput(
                "this account is disabled: enable it first".into(),
            ));
        }
        let ids = match &passkeys {
            PasskeySelection::All => None,
            PasskeySelection::Only(ids) => {
                let listed = self.passkeys.list(account.id).await?;
                if let Some(unknown) = ids.iter().find(|id| !listed.iter().any(|p| &p.id == *id)) {
                    tracing::info!(account = %account.username, passkey = %unknown, "reset refused: no such passkey");
                    return Err(AdminError::NotFound("passkey"));
                }
                Some(ids.as_slice())
            }
        };
        let caller = actor.caller();
        // A new random password nobody is told ends every session in the
        // same step: the old password (if any) is no way in any more.
        self.accounts.reset_password(&account, &caller).await?;
        self.passkeys
            .remove_for_admin(account.id, ids, false, &caller)
            .await?;
        for grant in self.app_grants(account.id).await? {
            self.oidc
                .withdraw_consent(account.id, &grant.client_id, &caller)
                .await?;
        }
        self.uninvite(username, &caller).await?;
        Ok(self
            .invite(username, None, InviteKind::Reset, valid_ms, &caller)
            .await?)
    }

    /// Disables the account (sessions ended, grants revoked, at once on
    /// every instance); never the actor's own, never the last enabled
    /// administrator.
    pub async fn disable_account_as(
        &self,
        actor: &AdminActor,
        username: &str,
    ) -> Result<Account, AdminError> {
        self.may_change(actor).await?;
        let account = self.accounts.account_named(username).await?;
        self.keep_an_admin(actor, &account).await?;
        Ok(self.disable_account(username, &actor.caller()).await?)
    }

    pub async fn enable_account_as(
        &self,
        actor: &AdminActor,
        username: &str,
    ) -> Result<Account, AdminError> {
        self.may_change(actor).await?;
        Ok(self.enable_account(username, &actor.caller()).await?)
    }

    /// Makes the account an administrator or not; never demotes the actor
    /// or the last enabled administrator.
    pub async fn set_admin_as(
        &self,
        actor: &AdminActor,
        username: &str,
        admin: bool,
    ) -> Result<Account, AdminError> {
        self.may_change(actor).await?;
        let account = self.accounts.account_named(username).await?;
        if !admin {
            self.keep_an_admin(actor, &account).await?;
        }
        Ok(self.set_admin(username, admin, &actor.caller()).await?)
    }

    /// Removes the account and everything keyed by it; never the actor's
    /// own, never the last enabled administrator.
    pub async fn remove_account_as(
        &self,
        actor: &AdminActor,
        username: &str,
    ) -> Result<Account, AdminError> {
        self.may_change(actor).await?;
        let account = self.accounts.account_named(username).await?;
        self.keep_an_admin(actor, &account).await?;
        Ok(self.remove_account(username, &actor.caller()).await?)
    }

    pub async fn revoke_session_as(
        &self,
        actor: &AdminActor,
        username: &str,
        session_id: &str,
    ) -> Result<(), AdminError> {
        self.may_change(actor).await?;
        let account = self.accounts.account_named(username).await?;
        Ok(self
            .accounts
            .revoke_session_of(&account, session_id, &actor.caller())
            .await?)
    }

    /// Removes one passkey; never the account's last way in (a reset is
    /// for that).
    pub async fn remove_passkey_as(
        &self,
        actor: &AdminActor,
        username: &str,
        passkey_id: &str,
    ) -> Result<(), AdminError> {
        self.may_change(actor).await?;
        let account = self.accounts.account_named(username).await?;
        let ids = [passkey_id.to_owned()];
        let removed = self
            .passkeys
            .remove_for_admin(account.id, Some(&ids), true, &actor.caller())
            .await?;
        if removed.is_empty() {
            return Err(AdminError::NotFound("passkey"));
        }
        Ok(())
    }

    /// Withdraws the account's consent to the app and revokes its grants
    /// (every code and token of them).
    pub async fn revoke_grant_as(
        &self,
        actor: &AdminActor,
        username: &str,
        client_id: &str,
    ) -> Result<(), AdminError> {
        self.may_change(actor).await?;
        let account = self.accounts.account_named(username).await?;
        let grants = self.app_grants(account.id).await?;
        if !grants.iter().any(|g| g.client_id == client_id) {
            return Err(AdminError::NotFound("app grant"));
        }
        self.oidc
            .withdraw_consent(account.id, client_id, &actor.caller())
            .await?;
        Ok(())
    }
}

/// Apps (OpenID Connect clients).
impl Services {
    pub async fn apps(&self) -> Result<Vec<AppSummary>, AdminError> {
        Ok(self
            .oidc
            .clients()
            .await?
            .iter()
            .map(AppSummary::of)
            .collect())
    }

    pub async fn add_app(&self, actor: &AdminActor, app: NewApp) -> Result<AddedApp, AdminError> {
        self.may_change(actor).await?;
        let (client, secret) = self
            .oidc
            .add_client_as(
                &app.name,
                &app.redirect_uris,
                &LogoutUris {
                    post_logout: app.post_logout_uris,
                    backchannel: app.backchannel_logout_uri,
                },
                app.public,
                &actor.caller(),
            )
            .await?;
        Ok(AddedApp {
            app: AppSummary::of(&client),
            secret,
        })
    }

    /// A confidential app's new secret (shown once; the old one stops).
    pub async fn rotate_app_secret(
        &self,
        actor: &AdminActor,
        client_id: &str,
    ) -> Result<String, AdminError> {
        self.may_change(actor).await?;
        Ok(self
            .oidc
            .rotate_client_secret(client_id, &actor.caller())
            .await?)
    }

    pub async fn remove_app(&self, actor: &AdminActor, client_id: &str) -> Result<(), AdminError> {
        self.may_change(actor).await?;
        Ok(self
            .oidc
            .remove_client_as(client_id, &actor.caller())
            .await?)
    }
}

/// The audit trail.
impl Services {
    /// The store's query for `filter` (`None`: it matches nothing, as for
    /// an unknown account).
    async fn audit_query(&self, filter: &AuditFilter) -> Result<Option<AuditQuery>, AdminError> {
        let account_id = match filter.account.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => match self.accounts.account_named(name).await {
                Ok(account) => Some(account.id),
                // A removed account's rows stay: found by its id.
                Err(AccountError::NoSuchAccount(_) | AccountError::InvalidInput(_)) => {
                    match name.parse::<i64>() {
                        Ok(id) => Some(id),
                        Err(_) => return Ok(None),
                    }
                }
                Err(e) => return Err(e.into()),
            },
        };
        let text = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        Ok(Some(AuditQuery {
            account_id,
            event: filter.event,
            client_id: text(&filter.app),
            ip: text(&filter.address),
            from: filter.from,
            to: filter.to,
            newest_first: true,
            ..AuditQuery::default()
        }))
    }

    /// One page of the rows `filter` selects, newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        page: u32,
        per_page: u32,
    ) -> Result<Page<AuditRecord>, AdminError> {
        let (page, per_page) = page_bounds(page, per_page);
        let Some(mut query) = self.audit_query(filter).await? else {
            return Ok(Page {
                items: Vec::new(),
                page,
                per_page,
                total: 0,
            });
        };
        let total = self.audit.count(&query).await?;
        query.offset = Some((page - 1).saturating_mul(per_page));
        query.limit = Some(per_page);
        Ok(Page {
            items: self.audit.events(&query).await?,
            page,
            per_page,
            total,
        })
    }

    /// Exactly the rows `filter` selects, newest first, at most
    /// [`MAX_EXPORT_ROWS`].
    pub async fn audit_export(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AdminError> {
        let Some(mut query) = self.audit_query(filter).await? else {
            return Ok(Vec::new());
        };
        query.limit = Some(MAX_EXPORT_ROWS);
        Ok(self.audit.events(&query).await?)
    }
}

/// Status.
impl Services {
    pub async fn admin_status(&self) -> Result<AdminStatus, AdminError> {
        let (database_ok, accounts) = match self.accounts.list_accounts().await {
            Ok(accounts) => (true, accounts),
            Err(err) => {
                tracing::warn!(error = %err, "status: the database is unavailable");
                (false, Vec::new())
            }
        };
        let sessions = self.accounts.count_sessions().await.unwrap_or_default();
        let redis_ok = match &self.admin.limiter {
            None => None,
            Some(limiter) => Some(
                limiter
                    .check("status-probe", "probe", NonZeroU32::MAX)
                    .await
                    .is_ok(),
            ),
        };
        Ok(AdminStatus {
            version: env!("CARGO_PKG_VERSION"),
            database: self.admin.database,
            database_ok,
            redis_configured: self.admin.limiter.is_some(),
            redis_ok,
            accounts: accounts.len() as u64,
            administrators: accounts.iter().filter(|a| a.admin).count() as u64,
            disabled_accounts: accounts.iter().filter(|a| a.disabled).count() as u64,
            sessions,
            desktops_waiting: super::logins::desktops_waiting(),
        })
    }
}

/// Admin API tokens.
impl Services {
    /// The live tokens, oldest first.
    pub async fn admin_tokens(&self) -> Result<Vec<AdminTokenView>, AdminError> {
        let store = self.passkeys.provider_store();
        let mut tokens: Vec<AdminTokenView> = store
            .list(TOKEN_KIND, "", now_millis())
            .await?
            .into_iter()
            .filter_map(|(key, record)| Some(AdminTokenView::of(&key, parse(&record)?)))
            .collect();
        tokens.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(tokens)
    }

    /// Makes a token valid `valid_days` (1 to [`MAX_TOKEN_DAYS`]); the
    /// secret is shown once ([`token_text`]), only its hash is kept.
    pub async fn add_admin_token(
        &self,
        caller: &Caller,
        name: &str,
        scope: TokenScope,
        valid_days: u64,
    ) -> Result<(AdminTokenView, Secret), AdminError> {
        self.add_admin_token_at(caller, name, scope, valid_days, now_millis())
            .await
    }

    /// [`Self::add_admin_token`] as if made at `now` (tests make expired
    /// tokens with it, without waiting).
    pub async fn add_admin_token_at(
        &self,
        caller: &Caller,
        name: &str,
        scope: TokenScope,
        valid_days: u64,
        now: UnixMillis,
    ) -> Result<(AdminTokenView, Secret), AdminError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AdminError::InvalidInput(
                "a token's name is 1 to 64 characters, without control characters".into(),
            ));
        }
        if valid_days == 0 || valid_days > MAX_TOKEN_DAYS {
            return Err(AdminError::InvalidInput(format!(
                "a token is valid 1 to {MAX_TOKEN_DAYS} days"
            )));
        }
        let stored = StoredToken {
            name: name.to_owned(),
            scope,
            created_at: now,
            expires_at: now.saturating_add(valid_days * DAY_MS),
            created_by: caller
                .actor
                .clone()
                .unwrap_or_else(|| "operator".to_owned()),
        };
        let secret = Secret::new_random();
        let key = token_key(&secret);
        let value =
            serde_json::to_string(&stored).map_err(|e| AdminError::InvalidInput(e.to_string()))?;
        self.passkeys
            .provider_store()
            .insert(TOKEN_KIND, &key, &value, stored.expires_at, now)
            .await?;
        let view = AdminTokenView::of(&key, stored);
        tracing::info!(token = %view.id, name = %view.name, scope = view.scope.as_str(), "admin API token added");
        self.audit
            .record(AuditEvent::AdminTokenAdded, None, None, caller);
        Ok((view, secret))
    }

    /// Revokes the token with id `id` (as listed): it stops at once.
    pub async fn revoke_admin_token(&self, caller: &Caller, id: &str) -> Result<(), AdminError> {
        let plausible = id.len() == TOKEN_ID_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plausible {
            return Err(AdminError::NoSuchToken(id.to_owned()));
        }
        let store = self.passkeys.provider_store();
        let mut revoked = false;
        for (key, _) in store.list(TOKEN_KIND, id, now_millis()).await? {
            revoked |= store.remove_key(TOKEN_KIND, &key).await?;
        }
        if !revoked {
            return Err(AdminError::NoSuchToken(id.to_owned()));
        }
        tracing::info!(token = %id, "admin API token revoked");
        self.audit
            .record(AuditEvent::AdminTokenRevoked, None, None, caller);
        Ok(())
    }
}

/// Admin API tokens, for an administrator (the console, the API).
impl Services {
    /// [`Self::add_admin_token`] for an administrator's session with the
    /// step-up; a token cannot mint tokens.
    pub async fn add_admin_token_as(
        &self,
        actor: &AdminActor,
        name: &str,
        scope: TokenScope,
        valid_days: u64,
    ) -> Result<(AdminTokenView, Secret), AdminError> {
        if !matches!(actor, AdminActor::Session { .. }) {
            return Err(AdminError::SessionOnly);
        }
        self.may_change(actor).await?;
        self.add_admin_token(&actor.caller(), name, scope, valid_days)
            .await
    }

    /// [`Self::revoke_admin_token`] for an administrator (a write token
    /// may revoke, itself included).
    pub async fn revoke_admin_token_as(
        &self,
        actor: &AdminActor,
        id: &str,
    ) -> Result<(), AdminError> {
        self.may_change(actor).await?;
        self.revoke_admin_token(&actor.caller(), id).await
    }
}
