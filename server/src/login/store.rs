//! Where pending login attempts live, and how waiters hear of changes.
//! Handlers see only [`LoginStore`], so other back-ends (Redis) can follow
//! without touching them.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{Attempt, LoginId, Transition, TransitionError, UnixMillis};
use crate::config::Ttls;

/// How long a finished attempt is kept, so that its browser learns how it
/// ended (e.g. "expired") instead of a bare 404.
pub const FINISHED_RETENTION_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an attempt with this id already exists")]
    Duplicate,
    #[error("login store unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait LoginStore: Send + Sync + 'static {
    async fn insert(&self, attempt: Attempt) -> Result<(), StoreError>;

    /// The attempt as of `now`: one whose time ran out comes back expired.
    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError>;

    /// Applies `transition` atomically: of two racing calls, one sees the
    /// other's result. `None` when there is no such attempt.
    async fn apply(
        &self,
        id: LoginId,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<Option<Applied>, StoreError>;

    /// A receiver of the attempt's version, which changes with every change
    /// of the attempt; `None` when there is no such attempt.
    async fn subscribe(&self, id: LoginId) -> Result<Option<watch::Receiver<u64>>, StoreError>;

    /// Forgets attempts that ended more than [`FINISHED_RETENTION_MS`] ago;
    /// returns them as they ended (expired where their time ran out).
    async fn purge(&self, now: UnixMillis) -> Result<Vec<Attempt>, StoreError>;
}

/// What applying a transition did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The attempt as it now is.
    pub attempt: Attempt,
    pub outcome: Result<(), TransitionError>,
    /// Whether the attempt changed (a repeated scan, say, does not).
    pub changed: bool,
}

struct Entry {
    attempt: Attempt,
    /// Waiting long polls hold receivers; no task or timer per waiter.
    version: watch::Sender<u64>,
}

impl Entry {
    fn publish(&self) {
        self.version.send_replace(self.attempt.version);
    }
}

/// The default store: a map in this process's memory.
#[derive(Default)]
pub struct MemoryLoginStore {
    attempts: Mutex<HashMap<LoginId, Entry>>,
}

impl MemoryLoginStore {
    fn attempts(&self) -> MutexGuard<'_, HashMap<LoginId, Entry>> {
        // No code panics while holding the lock, so a poisoned map is intact.
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl LoginStore for MemoryLoginStore {
    async fn insert(&self, attempt: Attempt) -> Result<(), StoreError> {
        let mut attempts = self.attempts();
        if attempts.contains_key(&attempt.id) {
            return Err(StoreError::Duplicate);
        }
        let (version, _) = watch::channel(attempt.version);
        attempts.insert(attempt.id, Entry { attempt, version });
        Ok(())
    }

    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        let mut attempts = self.attempts();
        Ok(attempts.get_mut(&id).map(|entry| {
            if entry.attempt.expire_if_due(now) {
                entry.publish();
            }
            entry.attempt.clone()
        }))
    }

    async fn apply(
        &self,
        id: LoginId,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<Option<Applied>, StoreError> {
        let mut attempts = self.attempts();
        Ok(attempts.get_mut(&id).map(|entry| {
            let before = entry.attempt.version;
            let outcome = entry.attempt.apply(transition, now, ttls);
            let changed = entry.attempt.version != before;
            if changed {
                entry.publish();
            }
            Applied {
                attempt: entry.attempt.clone(),
                outcome,
                changed,
            }
        }))
    }

    async fn subscribe(&self, id: LoginId) -> Result<Option<watch::Receiver<u64>>, StoreError> {
        Ok(self
            .attempts()
            .get(&id)
            .map(|entry| entry.version.subscribe()))
    }

    async fn purge(&self, now: UnixMillis) -> Result<Vec<Attempt>, StoreError> {
        let mut purged = Vec::new();
        self.attempts().retain(|_, e| {
            let keep = now < e.attempt.expires_at.saturating_add(FINISHED_RETENTION_MS);
            if !keep {
                e.attempt.expire_if_due(now);
                purged.push(e.attempt.clone());
            }
            keep
        });
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use app::api::LoginState;

    use super::*;
    use crate::login::{test_attempt as attempt, Scanner};

    #[tokio::test]
    async fn expires_on_read_once_and_is_purged_after_retention() {
        let store = MemoryLoginStore::default();
        let a = attempt(0);
        store.insert(a.clone()).await.unwrap();
        assert!(matches!(
            store.insert(a.clone()).await,
            Err(StoreError::Duplicate)
        ));

        let live = store.get(a.id, 59_999).await.unwrap().unwrap();
        assert_eq!((live.state, live.version), (LoginState::Pending, 1));
        let gone = store.get(a.id, 60_000).await.unwrap().unwrap();
        assert_eq!((gone.state, gone.version), (LoginState::Expired, 2));
        let again = store.get(a.id, 90_000).await.unwrap().unwrap();
        assert_eq!(again.version, 2, "a terminal attempt never changes again");

        let end = 60_000 + FINISHED_RETENTION_MS;
        assert!(store.purge(end - 1).await.unwrap().is_empty());
        let purged = store.purge(end).await.unwrap();
        assert_eq!(purged.len(), 1);
        assert_eq!(purged[0].state, LoginState::Expired);
        assert!(store.get(a.id, 0).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn subscribers_see_every_change_and_refusals_change_nothing() {
        let store = MemoryLoginStore::default();
        let a = attempt(0);
        store.insert(a.clone()).await.unwrap();
        let mut rx = store.subscribe(a.id).await.unwrap().unwrap();
        assert_eq!(*rx.borrow_and_update(), 1);

        let applied = store
            .apply(a.id, &Transition::Redeem, 1, &Ttls::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(applied.outcome, Err(TransitionError::NotApproved));
        assert!(!applied.changed);
        assert!(!rx.has_changed().unwrap());

        let scan = Transition::scan(Scanner {
            account_id: 7,
            display_name: "Alice".into(),
        });
        let applied = store
            .apply(a.id, &scan, 1, &Ttls::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(applied.outcome, Ok(()));
        assert!(applied.changed);
        assert_eq!(applied.attempt.state, LoginState::Scanned);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 2);
        assert!(store
            .subscribe(LoginId::new_random())
            .await
            .unwrap()
            .is_none());
    }
}
