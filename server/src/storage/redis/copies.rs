//! This instance's copies of the attempts in Redis, so that a status read,
//! a long poll or the decision of a change costs no round trip. They are
//! kept fresh by the subscriber: every change is announced, with the
//! attempt itself, in the same script that writes it, and Redis delivers a
//! channel's messages in order to every subscriber that stays connected.
//!
//! Why a copy never gives a wrong answer for long, and never a wrong write:
//!
//! - Copies are used only while the subscriber listens. When its connection
//!   breaks (a notification may be lost) every copy is dropped, and again
//!   once it listens anew; reads go to Redis meanwhile.
//! - A copy made from a read or a write is taken in only if no drop
//!   happened since the read or write was sent (the epoch), so a read that
//!   straddles a reconnect cannot plant what a missed message changed.
//! - Only a newer version replaces a copy.
//! - Every change is still a compare-and-set in Redis against the version
//!   it was decided on: a stale copy costs a retry, never a lost update.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use crate::domain::{
    attempt::{Attempt, LoginId, FINISHED_RETENTION_MS},
    time::UnixMillis,
};

/// Most copies kept; when full, they all go (reads then refill them).
pub const MAX_COPIES: usize = 200_000;

#[derive(Default)]
pub struct LocalCopies(Mutex<Inner>);

#[derive(Default)]
struct Inner {
    attempts: HashMap<LoginId, Attempt>,
    /// Bumped by every drop of all copies.
    epoch: u64,
    /// Whether the subscriber listens now: no copy is used or kept without.
    listening: bool,
}

/// When a copy must no longer be believed: the purge may have taken the
/// attempt from Redis by then.
fn believable(attempt: &Attempt, now: UnixMillis) -> bool {
    now < attempt.expires_at.saturating_add(FINISHED_RETENTION_MS)
}

impl LocalCopies {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing half-done can be left under the lock by a panic.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The epoch a read or write about to be sent belongs to; `None` while
    /// the subscriber does not listen (what it brings back is not kept).
    pub fn epoch(&self) -> Option<u64> {
        let inner = self.lock();
        inner.listening.then_some(inner.epoch)
    }

    /// The copy of `id`, if there is one to believe.
    pub fn get(&self, id: LoginId, now: UnixMillis) -> Option<Attempt> {
        let mut inner = self.lock();
        if !inner.listening {
            return None;
        }
        match inner.attempts.get(&id) {
            Some(attempt) if believable(attempt, now) => Some(attempt.clone()),
            Some(_) => {
                inner.attempts.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Keeps `attempt` as read from (or written to) Redis in `epoch`.
    pub fn keep(&self, attempt: &Attempt, epoch: Option<u64>) {
        let mut inner = self.lock();
        if inner.listening && epoch == Some(inner.epoch) {
            inner.put(attempt.clone());
        }
    }

    /// What the subscriber heard: `attempt` as it now is.
    pub fn heard(&self, attempt: Attempt) {
        let mut inner = self.lock();
        if inner.listening {
            inner.put(attempt);
        }
    }

    /// What the subscriber heard without the attempt: `id` is at
    /// `version` now, so an older copy is dropped.
    pub fn heard_version(&self, id: LoginId, version: u64) {
        let mut inner = self.lock();
        if inner
            .attempts
            .get(&id)
            .is_some_and(|copy| copy.version < version)
        {
            inner.attempts.remove(&id);
        }
    }

    /// Drops the copy of `id` (Redis no longer has it).
    pub fn forget(&self, id: LoginId) {
        self.lock().attempts.remove(&id);
    }

    /// Drops every copy: the subscriber's connection broke (`listening`
    /// false) or it listens again (true).
    pub fn drop_all(&self, listening: bool) {
        let mut inner = self.lock();
        inner.attempts = HashMap::new();
        inner.epoch += 1;
        inner.listening = listening;
    }

    /// Drops the copies the purge may have taken from Redis.
    pub fn forget_purged(&self, now: UnixMillis) {
        let mut inner = self.lock();
        inner.attempts.retain(|_, attempt| believable(attempt, now));
        if inner.attempts.capacity() > 2 * inner.attempts.len() + 1024 {
            inner.attempts.shrink_to_fit();
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().attempts.len()
    }
}

impl Inner {
    /// Keeps `attempt` unless the copy is as new already.
    fn put(&mut self, attempt: Attempt) {
        if let Some(copy) = self.attempts.get(&attempt.id) {
            if copy.version >= attempt.version {
                return;
            }
        } else if self.attempts.len() >= MAX_COPIES {
            self.attempts = HashMap::new();
        }
        self.attempts.insert(attempt.id, attempt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        attempt::{Requester, Ttls},
        secret::SecretHash,
    };

    fn attempt(version: u64) -> Attempt {
        let id = "0b8f6a52-2f6e-4b8e-9a4e-6f1d2c3b4a59".parse().unwrap();
        let requester = Requester {
            ip: None,
            user_agent: String::new(),
            client: None,
            expected_account: None,
        };
        let mut a = Attempt::new(id, SecretHash([0; 32]), requester, 1_000, &Ttls::default());
        a.version = version;
        a
    }

    #[test]
    fn copies_are_used_only_while_the_subscriber_listens() {
        let copies = LocalCopies::default();
        let a = attempt(1);
        copies.keep(&a, copies.epoch());
        copies.heard(a.clone());
        assert_eq!(copies.get(a.id, 2_000), None, "not listening yet");
        copies.drop_all(true);
        copies.keep(&a, copies.epoch());
        assert_eq!(copies.get(a.id, 2_000), Some(a.clone()));
        copies.drop_all(false);
        assert_eq!(copies.get(a.id, 2_000), None);
    }

    #[test]
    fn a_read_that_straddles_a_reconnect_is_not_kept() {
        let copies = LocalCopies::default();
        copies.drop_all(true);
        let a = attempt(1);
        let epoch = copies.epoch();
        copies.drop_all(false);
        copies.drop_all(true);
        copies.keep(&a, epoch);
        assert_eq!(copies.get(a.id, 2_000), None);
    }

    #[test]
    fn only_a_newer_version_replaces_a_copy() {
        let copies = LocalCopies::default();
        copies.drop_all(true);
        copies.heard(attempt(3));
        copies.keep(&attempt(2), copies.epoch());
        assert_eq!(copies.get(attempt(1).id, 2_000).unwrap().version, 3);
        copies.heard_version(attempt(1).id, 3);
        assert_eq!(copies.len(), 1);
        copies.heard_version(attempt(1).id, 4);
        assert_eq!(copies.len(), 0);
    }

    #[test]
    fn a_copy_is_not_believed_once_the_purge_may_have_taken_it() {
        let copies = LocalCopies::default();
        copies.drop_all(true);
        let a = attempt(1);
        copies.heard(a.clone());
        let gone = a.expires_at + FINISHED_RETENTION_MS;
        assert!(copies.get(a.id, gone - 1).is_some());
        assert!(copies.get(a.id, gone).is_none());
        assert_eq!(copies.len(), 0);
    }
}
