//! Where pending login attempts live. Handlers see only [`LoginStore`], so
//! other back-ends (Redis) can follow without touching them.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use async_trait::async_trait;

use super::{Attempt, LoginId, UnixMillis};

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

    /// Forgets attempts that ended more than [`FINISHED_RETENTION_MS`] ago;
    /// returns how many.
    async fn purge(&self, now: UnixMillis) -> Result<usize, StoreError>;
}

/// The default store: a map in this process's memory.
#[derive(Default)]
pub struct MemoryLoginStore {
    attempts: Mutex<HashMap<LoginId, Attempt>>,
}

impl MemoryLoginStore {
    fn attempts(&self) -> MutexGuard<'_, HashMap<LoginId, Attempt>> {
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
        attempts.insert(attempt.id, attempt);
        Ok(())
    }

    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        let mut attempts = self.attempts();
        Ok(attempts.get_mut(&id).map(|attempt| {
            attempt.expire_if_due(now);
            attempt.clone()
        }))
    }

    async fn purge(&self, now: UnixMillis) -> Result<usize, StoreError> {
        let mut attempts = self.attempts();
        let before = attempts.len();
        attempts.retain(|_, a| now < a.expires_at.saturating_add(FINISHED_RETENTION_MS));
        Ok(before - attempts.len())
    }
}

#[cfg(test)]
mod tests {
    use app::api::LoginState;

    use super::*;
    use crate::login::BindSecret;

    fn attempt(expires_at: UnixMillis) -> Attempt {
        Attempt {
            id: LoginId::new_random(),
            bind_hash: BindSecret::new_random().hash(),
            state: LoginState::Pending,
            version: 1,
            created_at: 0,
            expires_at,
        }
    }

    #[tokio::test]
    async fn expires_on_read_once_and_is_purged_after_retention() {
        let store = MemoryLoginStore::default();
        let a = attempt(1_000);
        store.insert(a.clone()).await.unwrap();
        assert!(matches!(
            store.insert(a.clone()).await,
            Err(StoreError::Duplicate)
        ));

        let live = store.get(a.id, 999).await.unwrap().unwrap();
        assert_eq!((live.state, live.version), (LoginState::Pending, 1));
        let gone = store.get(a.id, 1_000).await.unwrap().unwrap();
        assert_eq!((gone.state, gone.version), (LoginState::Expired, 2));
        let again = store.get(a.id, 5_000).await.unwrap().unwrap();
        assert_eq!(again.version, 2, "a terminal attempt never changes again");

        assert_eq!(
            store
                .purge(1_000 + FINISHED_RETENTION_MS - 1)
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.purge(1_000 + FINISHED_RETENTION_MS).await.unwrap(), 1);
        assert!(store.get(a.id, 0).await.unwrap().is_none());
    }
}
