//! The store traits the services use, split by concern, and what they
//! share. Back-ends implement them; nothing here knows a back-end.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::domain::{
    account::{Account, DisplayName, NewSession, Session, SignInRecord, Username},
    attempt::{Attempt, LoginId, Transition, TransitionError, Ttls},
    audit::{AuditEvent, AuditRecord},
    secret::SecretHash,
    time::UnixMillis,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An attempt with this id, or an account with this username, exists.
    #[error("already exists")]
    Duplicate,
    /// The back-end failed or cannot be reached; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        Self::Unavailable(err.to_string())
    }
}

/// What applying a transition did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The attempt as it now is.
    pub attempt: Attempt,
    pub outcome: Result<(), TransitionError>,
    /// Whether the attempt changed (a repeated scan, say, does not).
    pub changed: bool,
    /// Whether the store itself announced the change to every instance's
    /// [`ChangeNotifier`] in the same step as the write (Redis does): then
    /// nobody publishes it again, and no crash between write and notice can
    /// leave a desktop waiting.
    pub announced: bool,
}

#[async_trait]
pub trait AttemptStore: Send + Sync + 'static {
    /// Fails with [`StoreError::Duplicate`] when the id is taken.
    async fn insert(&self, attempt: Attempt) -> Result<(), StoreError>;

    /// The attempt as of `now`: one whose time ran out comes back expired.
    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError>;

    /// As [`Self::get`], but never from a copy this process keeps of a
    /// store shared with others (which may lag its notifications by a
    /// moment): what the store holds now.
    async fn get_fresh(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        self.get(id, now).await
    }

    /// Applies `transition` atomically: of two racing calls, one sees the
    /// other's result. `None` when there is no such attempt.
    async fn apply(
        &self,
        id: LoginId,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<Option<Applied>, StoreError>;

    /// Forgets attempts that ended more than
    /// [`FINISHED_RETENTION_MS`](crate::domain::attempt::FINISHED_RETENTION_MS)
    /// ago; returns each of them once, as it ended (expired where its time
    /// ran out).
    async fn purge(&self, now: UnixMillis) -> Result<Vec<Attempt>, StoreError>;
}

/// Tells waiting desktops that their attempt changed. Apart from
/// [`AttemptStore`] so that a back-end spanning processes (pub/sub) can
/// carry it; waiters hold a `watch` receiver each, so a waiting long poll
/// costs no task or timer.
#[async_trait]
pub trait ChangeNotifier: Send + Sync + 'static {
    /// Receives every version published for `id` from now on. Its first
    /// value means nothing: read the attempt after subscribing.
    fn subscribe(&self, id: LoginId) -> watch::Receiver<u64>;

    /// Wakes every subscriber of `id` (in every process) with `version`.
    async fn publish(&self, id: LoginId, version: u64) -> Result<(), StoreError>;

    /// Drops what it keeps for attempts nobody waits on any more.
    fn forget_idle(&self);
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Fails with [`StoreError::Duplicate`] when the username is taken.
    async fn create_account(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<Account, StoreError>;
    /// The account and its password hash.
    async fn find_account(
        &self,
        username: &Username,
    ) -> Result<Option<(Account, String)>, StoreError>;
    /// Replaces the password hash; false if there is no such account.
    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError>;
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError>;
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Removes the account, all its sessions and the provider `records`
    /// that hang off it, in one transaction; false (and nothing removed) if
    /// there was no such account. Its id is never given out again.
    async fn remove_account(
        &self,
        account_id: i64,
        records: &[RecordSelector],
    ) -> Result<bool, StoreError>;
    /// Replaces the password hash and ends every session of the account, in
    /// one step; false if there is no such account.
    async fn reset_account(&self, account_id: i64, password_hash: &str)
        -> Result<bool, StoreError>;
    /// Makes the account an administrator, or not; false if there is no
    /// such account.
    async fn set_admin(&self, account_id: i64, admin: bool) -> Result<bool, StoreError>;
    /// Disables the account, ends every session of it and removes the
    /// provider `records` chosen (its apps' grants), in one transaction;
    /// false (and nothing changed) if there is no such account. The
    /// account itself, its id and subject stay.
    async fn disable_account(
        &self,
        account_id: i64,
        records: &[RecordSelector],
    ) -> Result<bool, StoreError>;
    /// Enables a disabled account again (its ended sessions stay ended);
    /// false if there is no such account.
    async fn enable_account(&self, account_id: i64) -> Result<bool, StoreError>;
}

/// Provider records of one kind, chosen by key: what removing an account
/// removes with it (the services that own the records name them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSelector {
    pub kind: &'static str,
    pub key: KeyMatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMatch {
    /// This key only ("7" is not "70").
    Exact(String),
    /// Every key starting with it (end it with a separator: "7:").
    Prefix(String),
}

#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session; answers once it is durable.
    async fn create_session(
        &self,
        token_hash: &SecretHash,
        new: &NewSession,
        now: UnixMillis,
    ) -> Result<Session, StoreError>;
    /// The live session with this token hash, and its account.
    async fn session_by_token(
        &self,
        token_hash: &SecretHash,
        now: UnixMillis,
    ) -> Result<Option<(Session, Account)>, StoreError>;
    async fn touch_session(&self, id: &str, now: UnixMillis) -> Result<(), StoreError>;
    /// The account whose session had this token hash when this process
    /// last looked, if it remembers (a cache may): never proof that the
    /// session still lives, only whom a request claims to be.
    fn remembered_account(&self, _token_hash: &SecretHash) -> Option<i64> {
        None
    }
    /// The account's sessions, newest first.
    async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>, StoreError>;
    /// Revokes one of the account's sessions; false if it has none by that id.
    async fn delete_session(&self, account_id: i64, id: &str) -> Result<bool, StoreError>;
    /// How many sessions are stored, of every account (the admin status).
    async fn count_sessions(&self) -> Result<u64, StoreError>;
}

/// Which audit rows to read: every filter given must match; oldest first
/// unless `newest_first`; `offset` rows skipped, then at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub login_id: Option<String>,
    pub account_id: Option<i64>,
    pub event: Option<AuditEvent>,
    /// The OpenID Connect client (app) concerned.
    pub client_id: Option<String>,
    /// The caller's address, exactly as recorded.
    pub ip: Option<String>,
    /// Rows at or after this time.
    pub from: Option<UnixMillis>,
    /// Rows at or before this time.
    pub to: Option<UnixMillis>,
    pub newest_first: bool,
    pub offset: Option<u32>,
    pub limit: Option<u32>,
}

#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Queues a row without waiting; false when the queue is full (the row
    /// is dropped, never a request slowed down).
    fn append(&self, record: AuditRecord) -> bool;
    /// Resolves once every row appended before it is stored.
    async fn flush(&self) -> Result<(), StoreError>;
    /// Rows matching `query`, in its order (what was appended is flushed first).
    async fn events(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// How many rows match `query`'s filters (its order, offset and limit
    /// aside).
    async fn count_events(&self, query: &AuditQuery) -> Result<u64, StoreError>;
    /// The account's latest sign-ins, newest first.
    async fn recent_sign_ins(
        &self,
        account_id: i64,
        limit: u32,
    ) -> Result<Vec<SignInRecord>, StoreError>;
    /// Notes that the account looked at its sign-ins; returns when it last did.
    async fn mark_sign_ins_seen(
        &self,
        account_id: i64,
        now: UnixMillis,
    ) -> Result<UnixMillis, StoreError>;
}

/// One limit a request counts in a [`SharedLimiter`]: `n` per `period`
/// (in a burst, or spread out) for `key`.
#[derive(Debug, Clone)]
pub struct SharedCheck {
    pub limit: &'static str,
    pub key: String,
    pub period: Duration,
    pub n: NonZeroU32,
}

/// Rate limits counted once for every instance (one process counts its
/// own in memory and needs none).
#[async_trait]
pub trait SharedLimiter: Send + Sync + 'static {
    /// Counts one request against every one of `checks` in one step: all
    /// are counted if all allow it, none if one refuses; `Some(wait)` (the
    /// longest) when refused.
    async fn check_all(&self, checks: &[SharedCheck]) -> Result<Option<Duration>, StoreError>;

    /// Counts one request of `limit` for `key`, allowing `per_minute`;
    /// `Some(wait)` when refused.
    async fn check(
        &self,
        limit: &'static str,
        key: &str,
        per_minute: NonZeroU32,
    ) -> Result<Option<Duration>, StoreError> {
        self.check_all(&[SharedCheck {
            limit,
            key: key.to_owned(),
            period: Duration::from_secs(60),
            n: per_minute,
        }])
        .await
    }

    /// As [`Self::check`], allowing `per_hour` (for rare things such as
    /// open sign-ups).
    async fn check_per_hour(
        &self,
        limit: &'static str,
        key: &str,
        per_hour: NonZeroU32,
    ) -> Result<Option<Duration>, StoreError> {
        self.check_all(&[SharedCheck {
            limit,
            key: key.to_owned(),
            period: Duration::from_secs(3600),
            n: per_hour,
        }])
        .await
    }
}

/// A number that every session revocation, in any instance, advances:
/// cached sessions are trusted only while it stands still.
#[async_trait]
pub trait RevocationClock: Send + Sync + 'static {
    async fn current(&self) -> Result<u64, StoreError>;
    async fn advance(&self) -> Result<(), StoreError>;
}

/// One record of the OpenID Connect provider, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    /// JSON; the service that wrote it reads it.
    pub value: String,
    /// 1 when inserted, bumped by every [`ProviderStore::replace`].
    pub version: i64,
    pub expires_at: UnixMillis,
}

/// A record's value as the type its service wrote (`None`: not that type).
/// The services that share the record store read their records with this.
pub fn parse_record<T: serde::de::DeserializeOwned>(record: &ProviderRecord) -> Option<T> {
    serde_json::from_str(&record.value).ok()
}

/// The OpenID Connect provider's records: small JSON documents by kind and
/// key, each with a lifetime (a record past it is gone for every read), and
/// changed only by compare-and-set on its version, so that of two racing
/// uses of a code or a refresh token exactly one wins, on any instance.
/// Kept in the database (SQLite or PostgreSQL) beside the accounts.
#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    /// Fails with [`StoreError::Duplicate`] while a live record has the key.
    async fn insert(
        &self,
        kind: &str,
        key: &str,
        value: &str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    async fn get(
        &self,
        kind: &str,
        key: &str,
        now: UnixMillis,
    ) -> Result<Option<ProviderRecord>, StoreError>;
    /// Stores `value` only if the record is live and still at `version`;
    /// false otherwise (somebody else changed or removed it first).
    async fn replace(
        &self,
        kind: &str,
        key: &str,
        version: i64,
        value: &str,
        expires_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
    /// Removes every record of `kind` whose key starts with `prefix`; how
    /// many there were.
    async fn remove(&self, kind: &str, prefix: &str) -> Result<u64, StoreError>;
    /// Removes the one record of `kind` with exactly `key` (never one whose
    /// key merely starts with it: `7` is not `70`); whether there was one.
    async fn remove_key(&self, kind: &str, key: &str) -> Result<bool, StoreError>;
    /// The live records of `kind` whose key starts with `prefix`, by key.
    async fn list(
        &self,
        kind: &str,
        prefix: &str,
        now: UnixMillis,
    ) -> Result<Vec<(String, ProviderRecord)>, StoreError>;
    /// Deletes records whose time ran out; how many.
    async fn purge(&self, now: UnixMillis) -> Result<u64, StoreError>;
}

/// Every store a running server uses.
#[derive(Clone)]
pub struct Stores {
    /// The database's kind, as the admin status names it: `sqlite` or
    /// `postgres`.
    pub database: &'static str,
    pub attempts: Arc<dyn AttemptStore>,
    pub notifier: Arc<dyn ChangeNotifier>,
    pub accounts: Arc<dyn AccountStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub audit: Arc<dyn AuditStore>,
    /// Rate limits shared across instances; `None`: each process counts.
    pub limiter: Option<Arc<dyn SharedLimiter>>,
    pub provider: Arc<dyn ProviderStore>,
}
