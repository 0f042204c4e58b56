//! Accounts and sessions: signing in with a password, the session a token
//! names, signing out, revoking, the sign-in history, and the operator's
//! account management.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::{
    audit::AuditLog,
    limits::{self, ip_key, Check, HashSlot, LimitError, RateLimited, RateLimits},
    passkeys::SettingsStore,
};
use crate::{
    domain::{
        account::{
            Account, DisplayName, InvalidInput, NewSession, Password, PasswordError, Session,
            SignInMethod, SignInRecord, Username,
        },
        audit::AuditEvent,
        caller::Caller,
        oidc::LogoutNotice,
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    storage::{AccountStore, AuditStore, RecordSelector, SessionStore, StoreError},
};

/// Refresh `last_seen_at` at most this often, to spare the database.
const TOUCH_EVERY_MS: u64 = 60_000;
/// How many sign-ins the phone's history lists.
const RECENT_SIGN_INS: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Wrong username or password, or no such account: one answer for all.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The right password, for an account that turned passwords off.
    #[error("this account signs in with a passkey only")]
    PasswordOff,
    #[error("{0}")]
    InvalidInput(#[from] InvalidInput),
    #[error("an account named {0} already exists")]
    UsernameTaken(String),
    #[error("no account named {0}")]
    NoSuchAccount(String),
    #[error("no such session on this account")]
    SessionNotFound,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LimitError> for AccountError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Store(store) => Self::Store(store),
        }
    }
}

/// The signed-in account making a request.
#[derive(Debug, Clone)]
pub struct CurrentSession {
    pub session: Session,
    pub account: Account,
}

/// One sign-in of the history, as its account is shown it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSignIn {
    pub record: SignInRecord,
    /// Whether it happened since the account last looked.
    pub new: bool,
    /// Whether it started the session that is looking.
    pub current: bool,
}

/// A hash to check passwords against when the account does not exist, so
/// that "no such user" costs the same time as "wrong password".
static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

#[derive(Clone)]
pub struct AccountService {
    accounts: Arc<dyn AccountStore>,
    sessions: Arc<dyn SessionStore>,
    history: Arc<dyn AuditStore>,
    audit: AuditLog,
    limits: Arc<RateLimits>,
    settings: SettingsStore,
    endings: Arc<dyn SessionEndings>,
}

/// Who else must hear of sessions that end: the OpenID provider tells the
/// apps signed in through them (back-channel logout). Whom to tell is read
/// before the sessions go (the grants that say so may go with them), and
/// told after; neither ever fails or slows the sign-out.
#[async_trait::async_trait]
pub trait SessionEndings: Send + Sync {
    /// Whom to tell that `account`'s session `session_id` ended (`None`:
    /// every session, and every app's grant, of the account).
    async fn affected(&self, account: &Account, session_id: Option<&str>) -> Vec<LogoutNotice>;
    /// Tells them (queued: delivered and retried in the background, as
    /// the back-channel logout worker).
    async fn notify(&self, notices: Vec<LogoutNotice>);
}

/// Argon2 costs ≈20 ms of CPU: off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| PasswordError)?
}

/// As [`blocking`], holding a sign-in's hash slot until the hash is done,
/// even if the request is gone by then (operators' commands take none).
async fn blocking_in<T: Send + 'static>(
    slot: HashSlot,
    work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    blocking(move || {
        let _slot = slot;
        work()
    })
    .await
}

impl AccountService {
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        sessions: Arc<dyn SessionStore>,
        history: Arc<dyn AuditStore>,
        audit: AuditLog,
        limits: Arc<RateLimits>,
        settings: SettingsStore,
        endings: Arc<dyn SessionEndings>,
    ) -> Self {
        Self {
            accounts,
            sessions,
            history,
            audit,
            limits,
            settings,
            endings,
        }
    }

    /// Checks a username and password; the same error for every failure.
    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
        caller: &Caller,
    ) -> Result<Account, AccountError> {
        // Before any hashing, so a flood cannot burn the CPU either. Keyed by
        // the name as typed, existing or not: the answer tells nothing.
        let folded = username.trim().to_ascii_lowercase();
        limits::gate([
            self.limits.sign_in_ip.of(&ip_key(caller.ip)),
            self.limits
                .sign_in_username
                .of(&folded.chars().take(64).collect()),
        ])
        .await?;
        let (Ok(username), Ok(password)) = (Username::parse(username), Password::parse(password))
        else {
            return Err(AccountError::InvalidCredentials);
        };
        let found = self.accounts.find_account(&username).await?;
        // A bounded number of hashes at once, whatever the addresses: over
        // it, refused (429) after a short wait, never queued without end.
        let slot = self.limits.hashes.acquire().await?;
        let (account, stored) = match found {
            Some((account, hash)) => (Some(account), hash),
            None => {
                let dummy = DUMMY_HASH
                    .get_or_try_init(|| {
                        blocking(|| {
                            Password::parse("not a real password")
                                .map_err(|_| PasswordError)?
                                .hash()
                        })
                    })
                    .await?;
                (None, dummy.clone())
            }
        };
        let ok = blocking_in(slot, move || password.verify(&stored)).await?;
        match account {
            Some(account) if ok && !account.disabled => Ok(account),
            // A disabled account is refused as a wrong password is, after
            // the same work: the answer says nothing of the account to
            // someone who guesses, and the person learns why from whoever
            // disabled it. The audit trail tells the two apart.
            Some(account) if ok => {
                tracing::info!(username = %username, "sign-in refused: the account is disabled");
                self.audit
                    .record(AuditEvent::SignInFailed, None, Some(account.id), caller);
                Err(AccountError::InvalidCredentials)
            }
            account => {
                tracing::info!(username = %username, "sign-in refused");
                let account_id = account.map(|a| a.id);
                self.audit
                    .record(AuditEvent::SignInFailed, None, account_id, caller);
                Err(AccountError::InvalidCredentials)
            }
        }
    }

    /// Password sign-in: the new session's token and the account.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
        caller: &Caller,
    ) -> Result<(Secret, Account), AccountError> {
        let account = self.authenticate(username, password, caller).await?;
        // Said only to whoever knows the password.
        if self.settings.get(account.id).await?.password_off {
            return Err(AccountError::PasswordOff);
        }
        let token = self
            .start_session(&account, SignInMethod::Password, caller)
            .await?;
        Ok((token, account))
    }

    /// Signs `account` in from `caller`: a new session, answered once it is
    /// stored; returns its token.
    pub async fn start_session(
        &self,
        account: &Account,
        method: SignInMethod,
        caller: &Caller,
    ) -> Result<Secret, StoreError> {
        let (token, session) = self.store_session(account, method, caller).await?;
        self.session_started(account, &session, caller);
        Ok(token)
    }

    /// A new session for `account`, stored but not yet recorded as a
    /// sign-in: the caller then calls [`Self::session_started`], or takes
    /// it back with [`Self::discard_session`].
    pub async fn store_session(
        &self,
        account: &Account,
        method: SignInMethod,
        caller: &Caller,
    ) -> Result<(Secret, Session), StoreError> {
        let token = Secret::new_random();
        let new = NewSession {
            account_id: account.id,
            method,
            user_agent: caller.user_agent.clone(),
            ip: caller.ip_string(),
        };
        let session = self
            .sessions
            .create_session(&token.hash(), &new, now_millis())
            .await?;
        Ok((token, session))
    }

    /// Records the sign-in a stored session stands for.
    pub fn session_started(&self, account: &Account, session: &Session, caller: &Caller) {
        tracing::debug!(account = %account.username, session = %session.id, method = %session.method, "signed in");
        self.audit.record_sign_in(account.id, &session.id, caller);
    }

    /// Removes a stored session that must not be used after all.
    pub async fn discard_session(&self, session: &Session) {
        if let Err(err) = self
            .sessions
            .delete_session(session.account_id, &session.id)
            .await
        {
            // Its token was never handed out: nobody can use it.
            tracing::warn!(session = %session.id, error = %err, "cannot remove an unused session");
        }
    }

    /// The live session `token` names, if any.
    pub async fn current(&self, token: &Secret) -> Result<Option<CurrentSession>, StoreError> {
        let now = now_millis();
        let Some((session, account)) = self.sessions.session_by_token(&token.hash(), now).await?
        else {
            return Ok(None);
        };
        if now.saturating_sub(session.last_seen_at) > TOUCH_EVERY_MS {
            self.sessions.touch_session(&session.id, now).await?;
        }
        Ok(Some(CurrentSession { session, account }))
    }

    /// [`Self::current`], with the rate limits `limits` names for the
    /// session's account counted first. Where this process remembers whose
    /// the session is, the limits' gate runs before the session is looked
    /// up, and the lookup's check of the revocation clock uses the gate's
    /// reading: one Redis round trip for both. The session is checked all
    /// the same (a revoked one is refused, after it was counted); else it
    /// is looked up first and its account counted after.
    pub async fn current_limited(
        &self,
        token: &Secret,
        limits: impl FnOnce(i64) -> Vec<Check> + Send,
    ) -> Result<Option<CurrentSession>, LimitError> {
        if let Some(account_id) = self.sessions.remembered_account(&token.hash()) {
            limits::gate(limits(account_id)).await?;
            return Ok(self.current(token).await?);
        }
        let current = self.current(token).await?;
        if let Some(current) = &current {
            limits::gate(limits(current.account.id)).await?;
        }
        Ok(current)
    }

    /// Ends the caller's own session.
    pub async fn sign_out(
        &self,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<(), StoreError> {
        let CurrentSession { session, account } = current;
        let notices = self.endings.affected(account, Some(&session.id)).await;
        self.sessions
            .delete_session(account.id, &session.id)
            .await?;
        self.endings.notify(notices).await;
        tracing::info!(account = %account.username, session = %session.id, "signed out");
        self.audit
            .record(AuditEvent::SignedOut, None, Some(account.id), caller);
        Ok(())
    }

    /// Ends the account's session `session_id` (the apps signed in
    /// through it are told).
    async fn end_session(&self, account: &Account, session_id: &str) -> Result<(), AccountError> {
        if uuid::Uuid::try_parse(session_id).is_err() {
            return Err(AccountError::SessionNotFound);
        }
        let notices = self.endings.affected(account, Some(session_id)).await;
        if !self.sessions.delete_session(account.id, session_id).await? {
            return Err(AccountError::SessionNotFound);
        }
        self.endings.notify(notices).await;
        Ok(())
    }

    /// The account's sessions, newest first.
    pub async fn sessions(&self, current: &CurrentSession) -> Result<Vec<Session>, StoreError> {
        self.sessions.list_sessions(current.account.id).await
    }

    /// Revokes one of the account's own sessions; at once, everywhere.
    pub async fn revoke(
        &self,
        current: &CurrentSession,
        session_id: &str,
        caller: &Caller,
    ) -> Result<(), AccountError> {
        let account = &current.account;
        self.end_session(account, session_id).await?;
        tracing::info!(account = %account.username, session = %session_id, "session revoked");
        self.audit
            .record(AuditEvent::SessionRevoked, None, Some(account.id), caller);
        Ok(())
    }

    /// The account's latest sign-ins, those since its last look marked new
    /// (and that look noted now), and when it looked before.
    pub async fn recent_sign_ins(
        &self,
        current: &CurrentSession,
    ) -> Result<(Vec<SeenSignIn>, UnixMillis), StoreError> {
        let account = current.account.id;
        let seen_before = self
            .history
            .mark_sign_ins_seen(account, now_millis())
            .await?;
        let records = self
            .history
            .recent_sign_ins(account, RECENT_SIGN_INS)
            .await?;
        let seen = records
            .into_iter()
            .map(|record| {
                let current = record.active_session.as_deref() == Some(current.session.id.as_str());
                SeenSignIn {
                    new: record.at > seen_before && !current,
                    current,
                    record,
                }
            })
            .collect();
        Ok((seen, seen_before))
    }

    /// The account `id` while it may act: it exists and is not disabled.
    /// Whatever acts for an account found by id (the approver a desktop
    /// redeems, a passkey's owner, a grant's account when tokens are
    /// issued or an access token is used) asks here, so that a disabled
    /// account is refused everywhere as a removed one is.
    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        Ok(self
            .accounts
            .account_by_id(id)
            .await?
            .filter(|account| !account.disabled))
    }

    /// Creates an account (operators: `qrlogin user add`).
    pub async fn add_account(
        &self,
        username: &str,
        display_name: Option<&str>,
        password: &str,
        now: UnixMillis,
    ) -> Result<Account, AccountError> {
        let username = Username::parse(username)?;
        let display_name = DisplayName::parse(display_name.unwrap_or(username.as_str()))?;
        let password = Password::parse(password)?;
        let hash = blocking(move || password.hash()).await?;
        match self
            .accounts
            .create_account(&username, &display_name, &hash, now)
            .await
        {
            Err(StoreError::Duplicate) => Err(AccountError::UsernameTaken(username.to_string())),
            other => Ok(other?),
        }
    }

    /// Gives an existing account a new password; false if there is none.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<bool, AccountError> {
        let username = Username::parse(username)?;
        let password = Password::parse(password)?;
        let hash = blocking(move || password.hash()).await?;
        Ok(self.accounts.set_password(&username, &hash).await?)
    }

    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.accounts.list_accounts().await
    }

    /// The account named `username` (operators' commands).
    pub async fn account_named(&self, username: &str) -> Result<Account, AccountError> {
        let username = Username::parse(username)?;
        match self.accounts.find_account(&username).await? {
            Some((account, _)) => Ok(account),
            None => Err(AccountError::NoSuchAccount(username.to_string())),
        }
    }

    /// Removes the account, signs out all its sessions and removes
    /// `records` (what other services keep for it), in one step. Its id and
    /// subject are never given out again; the audit trail keeps its rows.
    pub async fn remove_account(
        &self,
        account: &Account,
        records: &[RecordSelector],
        caller: &Caller,
    ) -> Result<(), AccountError> {
        let notices = self.endings.affected(account, None).await;
        if !self.accounts.remove_account(account.id, records).await? {
            return Err(AccountError::NoSuchAccount(account.username.clone()));
        }
        self.endings.notify(notices).await;
        tracing::info!(account = %account.username, id = account.id, "account removed");
        self.audit
            .record(AuditEvent::AccountRemoved, None, Some(account.id), caller);
        Ok(())
    }

    /// Gives the account a new, random password and ends all its sessions
    /// at once; returns the password (to be shown once).
    pub async fn reset_password(
        &self,
        account: &Account,
        caller: &Caller,
    ) -> Result<String, AccountError> {
        // 20 characters of a random token: ~120 bits, easy to copy.
        let new: String = Secret::new_random().encode().chars().take(20).collect();
        let password = Password::parse(&new)?;
        let hash = blocking(move || password.hash()).await?;
        let notices = self.endings.affected(account, None).await;
        if !self.accounts.reset_account(account.id, &hash).await? {
            return Err(AccountError::NoSuchAccount(account.username.clone()));
        }
        self.endings.notify(notices).await;
        tracing::info!(account = %account.username, "account reset: new password, sessions ended");
        self.audit
            .record(AuditEvent::AccountReset, None, Some(account.id), caller);
        Ok(new)
    }

    /// Makes the account an administrator, or not; at once on every
    /// instance (cached copies of the account are dropped).
    pub async fn set_admin(
        &self,
        account: &Account,
        admin: bool,
        caller: &Caller,
    ) -> Result<(), AccountError> {
        if !self.accounts.set_admin(account.id, admin).await? {
            return Err(AccountError::NoSuchAccount(account.username.clone()));
        }
        let event = if admin {
            AuditEvent::AdminGranted
        } else {
            AuditEvent::AdminRevoked
        };
        tracing::info!(account = %account.username, admin, "administrator flag set");
        self.audit.record(event, None, Some(account.id), caller);
        Ok(())
    }

    /// Disables the account: every session ends and `records` (its apps'
    /// grants) go, in one step, at once on every instance. Signing in,
    /// approving and tokens are refused until it is enabled; the account,
    /// its id, subject, passkeys and settings stay.
    pub async fn disable(
        &self,
        account: &Account,
        records: &[RecordSelector],
        caller: &Caller,
    ) -> Result<(), AccountError> {
        let notices = self.endings.affected(account, None).await;
        if !self.accounts.disable_account(account.id, records).await? {
            return Err(AccountError::NoSuchAccount(account.username.clone()));
        }
        self.endings.notify(notices).await;
        tracing::info!(account = %account.username, "account disabled: sessions ended, grants revoked");
        self.audit
            .record(AuditEvent::AccountDisabled, None, Some(account.id), caller);
        Ok(())
    }

    /// Lets a disabled account sign in again (its ended sessions and
    /// revoked grants stay so).
    pub async fn enable(&self, account: &Account, caller: &Caller) -> Result<(), AccountError> {
        if !self.accounts.enable_account(account.id).await? {
            return Err(AccountError::NoSuchAccount(account.username.clone()));
        }
        tracing::info!(account = %account.username, "account enabled");
        self.audit
            .record(AuditEvent::AccountEnabled, None, Some(account.id), caller);
        Ok(())
    }
}

/// What the administrators' service reads and does to any account.
impl AccountService {
    /// The sessions of `account_id`, newest first.
    pub async fn sessions_of(&self, account_id: i64) -> Result<Vec<Session>, StoreError> {
        self.sessions.list_sessions(account_id).await
    }

    /// How many sessions are stored, of every account.
    pub async fn count_sessions(&self) -> Result<u64, StoreError> {
        self.sessions.count_sessions().await
    }

    /// Every account, disabled ones too (what [`Self::account_by_id`]
    /// hides), for the administrators.
    pub async fn any_account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        self.accounts.account_by_id(id).await
    }

    /// Revokes one session of `account` for an administrator; at once,
    /// everywhere.
    pub async fn revoke_session_of(
        &self,
        account: &Account,
        session_id: &str,
        caller: &Caller,
    ) -> Result<(), AccountError> {
        self.end_session(account, session_id).await?;
        tracing::info!(account = %account.username, session = %session_id, "session revoked by an administrator");
        self.audit
            .record(AuditEvent::SessionRevoked, None, Some(account.id), caller);
        Ok(())
    }
}
