//! The in-process back-end: pending attempts in a map, and change
//! notification through one `watch` channel per waited-on attempt.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use async_trait::async_trait;
use tokio::sync::watch;

use super::traits::{Applied, AttemptStore, ChangeNotifier, StoreError};
use crate::domain::{
    attempt::{Attempt, LoginId, Transition, Ttls, FINISHED_RETENTION_MS},
    time::UnixMillis,
};

/// Attempts in this process's memory: the default, for one instance.
#[derive(Default)]
pub struct MemoryAttemptStore {
    attempts: Mutex<HashMap<LoginId, Attempt>>,
}

impl MemoryAttemptStore {
    fn attempts(&self) -> MutexGuard<'_, HashMap<LoginId, Attempt>> {
        // No code panics while holding the lock, so a poisoned map is intact.
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AttemptStore for MemoryAttemptStore {
    async fn insert(&self, attempt: Attempt) -> Result<(), StoreError> {
        let mut attempts = self.attempts();
        if attempts.contains_key(&attempt.id) {
            return Err(StoreError::Duplicate);
        }
        attempts.insert(attempt.id, attempt);
        Ok(())
    }

    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        Ok(self.attempts().get_mut(&id).map(|attempt| {
            attempt.expire_if_due(now);
            attempt.clone()
        }))
    }

    async fn apply(
        &self,
        id: LoginId,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<Option<Applied>, StoreError> {
        Ok(self.attempts().get_mut(&id).map(|attempt| {
            let before = attempt.version;
            let outcome = attempt.apply(transition, now, ttls);
            Applied {
                changed: attempt.version != before,
                attempt: attempt.clone(),
                outcome,
                announced: false,
            }
        }))
    }

    async fn purge(&self, now: UnixMillis) -> Result<Vec<Attempt>, StoreError> {
        let mut purged = Vec::new();
        self.attempts().retain(|_, attempt| {
            let keep = now < attempt.expires_at.saturating_add(FINISHED_RETENTION_MS);
            if !keep {
                attempt.expire_if_due(now);
                purged.push(attempt.clone());
            }
            keep
        });
        Ok(purged)
    }
}

/// Notification within this process: a `watch` sender per attempt that
/// someone waits on, made by the first subscriber.
#[derive(Default)]
pub struct LocalNotifier {
    senders: Mutex<HashMap<LoginId, watch::Sender<u64>>>,
}

impl LocalNotifier {
    fn senders(&self) -> MutexGuard<'_, HashMap<LoginId, watch::Sender<u64>>> {
        self.senders.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes this process's subscribers of `id` (what a cross-process
    /// notifier calls when a message arrives).
    pub fn wake(&self, id: LoginId, version: u64) {
        let mut senders = self.senders();
        if let Some(sender) = senders.get(&id) {
            if sender.send(version).is_err() {
                // Nobody waits any more.
                senders.remove(&id);
            }
        }
    }

    /// Wakes every waiter of this process (after messages may have been
    /// missed): dropping the senders ends their waits; each then reads its
    /// attempt again, and the next subscriber makes a new sender.
    pub fn wake_all(&self) {
        self.senders().clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.senders().len()
    }
}

#[async_trait]
impl ChangeNotifier for LocalNotifier {
    fn subscribe(&self, id: LoginId) -> watch::Receiver<u64> {
        self.senders()
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    async fn publish(&self, id: LoginId, version: u64) -> Result<(), StoreError> {
        self.wake(id, version);
        Ok(())
    }

    fn forget_idle(&self) {
        self.senders()
            .retain(|_, sender| sender.receiver_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn senders_live_only_while_someone_waits() {
        let notifier = LocalNotifier::default();
        let id = LoginId::new_random();
        let mut rx = notifier.subscribe(id);
        notifier.publish(id, 3).await.unwrap();
        assert_eq!(*rx.borrow_and_update(), 3);
        drop(rx);
        notifier.forget_idle();
        assert_eq!(notifier.len(), 0);
        // Publishing to nobody keeps nothing.
        notifier.publish(id, 4).await.unwrap();
        assert_eq!(notifier.len(), 0);
        let _rx = notifier.subscribe(id);
        notifier.forget_idle();
        assert_eq!(notifier.len(), 1);
    }
}
