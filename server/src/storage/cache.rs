//! Sessions looked up by token, kept in memory in front of any
//! [`SessionStore`] + [`AccountStore`]. Every phone call (scan, approve, deny, /me) starts with
//! that lookup, and through SQLite it cost more than the rest of the request.
//!
//! Correctness: every change this process makes to a session or account
//! (revoke, sign out, remove, reset, disable, enable, admin flag, touch)
//! updates the cache before it returns, so a revoked token stops working at
//! once. With a shared [`RevocationClock`] (several instances), every
//! revocation also advances the clock, and a lookup trusts the cache only
//! while the clock reads what it read last: a session revoked on one
//! instance is refused on every other at once, at the cost of one small
//! Redis read per request (see [`scope`]; the rate-limit gate reads it in
//! the same step as the limits). Without one, changes made by another process
//! (`qrlogin user remove` or `disable` while the server runs) are
//! seen when an entry is next revalidated, after [`REVALIDATE_AFTER`] at
//! most. A generation counter keeps a lookup that raced a revocation from
//! caching what it read.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{
    scope,
    traits::{AccountStore, RecordSelector, RevocationClock, SessionStore, StoreError},
};
use crate::domain::{
    account::{Account, DisplayName, NewSession, Session, Username},
    secret::SecretHash,
    time::UnixMillis,
};

/// How long a cached session is trusted before the store is asked again.
pub const REVALIDATE_AFTER: Duration = Duration::from_secs(10);
/// Entries kept at most per map; when full, the map starts over.
const MAX_ENTRIES: usize = 100_000;

/// Values read from the store, each with when it was read.
struct Fetched<K, V>(Mutex<HashMap<K, (V, Instant)>>);

impl<K: Eq + Hash, V: Clone> Fetched<K, V> {
    fn new() -> Self {
        Self(Mutex::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (V, Instant)>> {
        // A panic while holding the lock cannot leave a half-made entry.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct CachedSessions<S: ?Sized> {
    inner: Arc<S>,
    /// Shared by every instance; `None` for a single process.
    revocations: Option<Arc<dyn RevocationClock>>,
    /// The clock's reading the cached entries were made under, plus one
    /// (0: none yet).
    clock_seen: AtomicU64,
    /// (session, its account) by token hash: every phone call's lookup.
    sessions: Fetched<SecretHash, (Session, Account)>,
    /// Accounts by id (redeem looks the approver up), same rules.
    accounts: Fetched<i64, Account>,
    /// Bumped by every invalidation.
    generation: AtomicU64,
    revalidate_after: Duration,
}

impl<S: AccountStore + SessionStore + ?Sized> CachedSessions<S> {
    pub fn new(inner: Arc<S>) -> Self {
        Self::with_revalidation(inner, REVALIDATE_AFTER)
    }

    pub fn with_revalidation(inner: Arc<S>, revalidate_after: Duration) -> Self {
        Self {
            inner,
            revocations: None,
            clock_seen: AtomicU64::new(0),
            sessions: Fetched::new(),
            accounts: Fetched::new(),
            generation: AtomicU64::new(0),
            revalidate_after,
        }
    }

    /// Trusts the cache only while `revocations` stands still.
    pub fn shared(mut self, revocations: Arc<dyn RevocationClock>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Whether the cache may be used now: with a shared clock, only if it
    /// can be read (once per request: see [`scope`]); when it moved past
    /// what the cache was made under, everything cached is dropped first.
    /// A reading older than the cache's (another request read the clock
    /// later) finds entries at least as fresh as it needs.
    async fn cache_usable(&self) -> bool {
        let Some(revocations) = &self.revocations else {
            return true;
        };
        let now = match scope::clock() {
            Some(now) => now,
            None => match revocations.current().await {
                Ok(now) => {
                    scope::saw_clock(now);
                    now
                }
                // Cannot tell what was revoked: ask the store itself.
                Err(_) => return false,
            },
        };
        if self.made_under_or_after(now) {
            return true;
        }
        let mut sessions = self.sessions.lock();
        let mut accounts = self.accounts.lock();
        if !self.made_under_or_after(now) {
            self.generation.fetch_add(1, Ordering::SeqCst);
            sessions.clear();
            accounts.clear();
            self.clock_seen.store(now + 1, Ordering::SeqCst);
        }
        true
    }

    /// Whether the cache was made under the clock reading `now` or a
    /// later one.
    fn made_under_or_after(&self, now: u64) -> bool {
        let seen = self.clock_seen.load(Ordering::SeqCst);
        seen.checked_sub(1).is_some_and(|seen| now <= seen)
    }

    /// Runs `revoke` (a change to the store) so that every instance hears
    /// of it: the clock advances before (if it cannot, nothing is revoked
    /// and the caller gets the error, to try again) and after (so that a
    /// lookup on another instance that read the store in between does not
    /// keep what it read).
    async fn revoking<T>(
        &self,
        revoke: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if let Some(revocations) = &self.revocations {
            revocations.advance().await?;
        }
        let revoked = revoke.await;
        if let Some(revocations) = &self.revocations {
            if let Err(err) = revocations.advance().await {
                tracing::warn!(error = %err, "cannot advance the revocation clock after a revocation");
            }
            // This request's reading is behind now: the next lookup reads again.
            scope::forget_clock();
        }
        revoked
    }

    /// Drops sessions matching `gone`, after the store has changed. The
    /// generation is bumped under the lock, so a lookup that read the store
    /// before the change cannot cache what it read (see [`Self::read_through`]).
    fn invalidate(&self, gone: impl Fn(&Session, &Account) -> bool) {
        let mut sessions = self.sessions.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        sessions.retain(|_, ((session, account), _)| !gone(session, account));
    }

    /// Drops the account and its sessions, after the store removed or
    /// changed them.
    fn forget_account(&self, account_id: i64) {
        self.invalidate(|session, _| session.account_id == account_id);
        self.accounts.lock().remove(&account_id);
    }

    /// The cached value when it is fresh and `usable`; else `load`'s answer,
    /// cached unless an invalidation happened meanwhile.
    async fn read_through<K, V, F>(
        &self,
        cache: &Fetched<K, V>,
        key: K,
        usable: impl Fn(&V) -> bool,
        load: impl FnOnce() -> F,
    ) -> Result<Option<V>, StoreError>
    where
        K: Eq + Hash,
        V: Clone,
        F: Future<Output = Result<Option<V>, StoreError>>,
    {
        if !self.cache_usable().await {
            return load().await;
        }
        if let Some((value, fetched)) = cache.lock().get(&key) {
            if fetched.elapsed() < self.revalidate_after && usable(value) {
                return Ok(Some(value.clone()));
            }
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let found = load().await?;
        let mut entries = cache.lock();
        match &found {
            Some(value) if self.generation.load(Ordering::SeqCst) == generation => {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(key, (value.clone(), Instant::now()));
            }
            _ => {
                entries.remove(&key);
            }
        }
        Ok(found)
    }
}

#[async_trait]
impl<S: AccountStore + SessionStore + ?Sized> SessionStore for CachedSessions<S> {
    async fn session_by_token(
        &self,
        token_hash: &SecretHash,
        now: UnixMillis,
    ) -> Result<Option<(Session, Account)>, StoreError> {
        self.read_through(
            &self.sessions,
            *token_hash,
            |(session, _)| session.is_live(now),
            || self.inner.session_by_token(token_hash, now),
        )
        .await
    }

    fn remembered_account(&self, token_hash: &SecretHash) -> Option<i64> {
        self.sessions
            .lock()
            .get(token_hash)
            .map(|((session, _), _)| session.account_id)
    }

    async fn touch_session(&self, id: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.inner.touch_session(id, now).await?;
        for ((session, _), _) in self.sessions.lock().values_mut() {
            if session.id == id {
                session.last_seen_at = now;
            }
        }
        Ok(())
    }

    async fn delete_session(&self, account_id: i64, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .revoking(self.inner.delete_session(account_id, id))
            .await;
        self.invalidate(|session, _| session.id == id);
        deleted
    }

    async fn create_session(
        &self,
        token_hash: &SecretHash,
        new: &NewSession,
        now: UnixMillis,
    ) -> Result<Session, StoreError> {
        self.inner.create_session(token_hash, new, now).await
    }

    async fn list_sessions(&self, account_id: i64) -> Result<Vec<Session>, StoreError> {
        self.inner.list_sessions(account_id).await
    }
    async fn count_sessions(&self) -> Result<u64, StoreError> {
        self.inner.count_sessions().await
    }
}

#[async_trait]
impl<S: AccountStore + SessionStore + ?Sized> AccountStore for CachedSessions<S> {
    async fn remove_account(
        &self,
        account_id: i64,
        records: &[RecordSelector],
    ) -> Result<bool, StoreError> {
        let removed = self
            .revoking(self.inner.remove_account(account_id, records))
            .await;
        self.forget_account(account_id);
        removed
    }

    async fn reset_account(
        &self,
        account_id: i64,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        let reset = self
            .revoking(self.inner.reset_account(account_id, password_hash))
            .await;
        self.invalidate(|session, _| session.account_id == account_id);
        reset
    }

    // The three below change the account every cached (session, account)
    // of it carries: each is a revocation (the clock advances, so every
    // instance drops its copies) and this process forgets the account.

    async fn set_admin(&self, account_id: i64, admin: bool) -> Result<bool, StoreError> {
        let set = self.revoking(self.inner.set_admin(account_id, admin)).await;
        self.forget_account(account_id);
        set
    }

    async fn disable_account(
        &self,
        account_id: i64,
        records: &[RecordSelector],
    ) -> Result<bool, StoreError> {
        let disabled = self
            .revoking(self.inner.disable_account(account_id, records))
            .await;
        self.forget_account(account_id);
        disabled
    }

    async fn enable_account(&self, account_id: i64) -> Result<bool, StoreError> {
        let enabled = self.revoking(self.inner.enable_account(account_id)).await;
        self.forget_account(account_id);
        enabled
    }

    async fn create_account(
        &self,
        username: &Username,
        display_name: &DisplayName,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<Account, StoreError> {
        self.inner
            .create_account(username, display_name, password_hash, now)
            .await
    }

    async fn find_account(
        &self,
        username: &Username,
    ) -> Result<Option<(Account, String)>, StoreError> {
        self.inner.find_account(username).await
    }

    async fn set_password(
        &self,
        username: &Username,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        self.inner.set_password(username, password_hash).await
    }

    /// Shared by several instances, the cache is used only where this
    /// request has read the revocation clock already (the gate did, or a
    /// session lookup); else the store is asked, rather than Redis first
    /// and then, as like as not, the store (a redeem's approver).
    async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        if self.revocations.is_some() && scope::clock().is_none() {
            return self.inner.account_by_id(id).await;
        }
        self.read_through(
            &self.accounts,
            id,
            |_| true,
            || self.inner.account_by_id(id),
        )
        .await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.inner.list_accounts().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{account::SignInMethod, secret::Secret};
    use crate::storage::sqlite::{store_with_alice, SqliteStore};

    /// Whether the token still signs someone in.
    async fn live(store: &impl SessionStore, hash: &SecretHash) -> bool {
        store.session_by_token(hash, 2_000).await.unwrap().is_some()
    }

    async fn store_with_session(
        dir: &tempfile::TempDir,
    ) -> (Arc<SqliteStore>, Account, SecretHash, Session) {
        let (store, account) = store_with_alice(&dir.path().join("cache.db")).await;
        let hash = Secret::new_random().hash();
        let new = NewSession {
            account_id: account.id,
            method: SignInMethod::Password,
            user_agent: "test".into(),
            ip: "127.0.0.1".into(),
        };
        let session = store.create_session(&hash, &new, 1_000).await.unwrap();
        (Arc::new(store), account, hash, session)
    }

    #[tokio::test]
    async fn a_revoked_session_is_gone_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, account, hash, session) = store_with_session(&dir).await;
        let cached = CachedSessions::new(store);
        assert!(live(&cached, &hash).await);
        assert!(cached
            .delete_session(account.id, &session.id)
            .await
            .unwrap());
        assert!(!live(&cached, &hash).await);
    }

    #[tokio::test]
    async fn a_removed_account_loses_its_cached_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, hash, _) = store_with_session(&dir).await;
        let cached = CachedSessions::new(store);
        assert!(live(&cached, &hash).await);
        assert!(cached.account_by_id(1).await.unwrap().is_some());
        assert!(cached.remove_account(1, &[]).await.unwrap());
        assert!(!live(&cached, &hash).await);
        assert!(cached.account_by_id(1).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn changes_from_another_process_are_seen_on_revalidation() {
        let dir = tempfile::tempdir().unwrap();
        let (store, account, hash, session) = store_with_session(&dir).await;
        // Another connection to the same file stands for `qrlogin user remove`.
        let other = SqliteStore::open(&dir.path().join("cache.db"))
            .await
            .unwrap();
        let stale = CachedSessions::new(store);
        assert!(live(&stale, &hash).await);
        assert!(other.delete_session(account.id, &session.id).await.unwrap());
        // Within the window the cache still answers; with no window it asks.
        assert!(live(&stale, &hash).await);
        let store = SqliteStore::open(&dir.path().join("cache.db"))
            .await
            .unwrap();
        let fresh = CachedSessions::with_revalidation(Arc::new(store), Duration::ZERO);
        assert!(!live(&fresh, &hash).await);
    }

    #[tokio::test]
    async fn touching_updates_the_cached_last_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _, hash, session) = store_with_session(&dir).await;
        let cached = CachedSessions::new(store);
        cached.session_by_token(&hash, 2_000).await.unwrap();
        cached.touch_session(&session.id, 5_000).await.unwrap();
        let (seen, _) = cached
            .session_by_token(&hash, 6_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(seen.last_seen_at, 5_000);
    }
}
