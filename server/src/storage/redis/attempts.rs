//! Pending attempts in Redis. Each attempt is a hash (`v`: its version,
//! `a`: the attempt as JSON) that Redis expires by itself; a sorted set
//! orders them by when they may be purged. The state machine runs here in
//! Rust, on this instance's copy of the attempt (see `copies`) or, without
//! one, on what one read brings; one Lua script then stores the result
//! only if the version is still the one decided on (compare-and-set) and
//! announces it, with the attempt, to every instance in the same step.
//! When another instance got there first, the script answers with the
//! attempt as it now is, and the change is decided again on that: no
//! second read. So a change costs one round trip, a read none.

use std::net::IpAddr;

use async_trait::async_trait;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use redis::Script;
use serde::{Deserialize, Serialize};

use super::RedisConnection;
use crate::{
    domain::{
        attempt::{
            Attempt, LoginId, LoginState, Requester, Scanner, Transition, Ttls,
            FINISHED_RETENTION_MS,
        },
        secret::SecretHash,
        time::UnixMillis,
    },
    storage::traits::{Applied, AttemptStore, StoreError},
};

/// Redis drops an attempt's key this long after it could have been
/// purged: the purge (which audits expiries) normally takes it first.
const KEY_SLACK_MS: u64 = 60 * 60 * 1000;
/// How many times a compare-and-set is retried against racing writers.
const CAS_TRIES: usize = 32;
/// Most attempts one purge takes.
const PURGE_BATCH: usize = 1000;

/// Compare-and-set: if the stored version is ARGV[1] (or, with ARGV[1]
/// empty, if there is none yet), stores the attempt ARGV[3] at version
/// ARGV[2] and announces "id version json" on channel ARGV[7], in one
/// step; with ARGV[2] empty it only compares (a decision that changed
/// nothing is still checked against what Redis holds). Answers {1, ''}
/// when done, {0, current JSON} when the version moved on (or, for a new
/// one, the id is taken), {-1, ''} when there is no such attempt.
const WRITE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'v', 'a')
local v, a = cur[1], cur[2]
if ARGV[1] == '' then
  if v then return {0, a or ''} end
elseif not v then return {-1, ''}
elseif v ~= ARGV[1] then return {0, a or ''} end
if ARGV[2] == '' then return {1, ''} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'a', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[6] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
return {1, ''}";

/// The attempt's JSON (nil: none). A script like every other call, so that
/// `EVALSHA` calls in Redis's command statistics are qrlogin's round trips.
const READ: &str = r"return redis.call('HGET', KEYS[1], 'a')";

/// Takes (returns and deletes) the attempts due for purging. Atomic, so
/// each is taken by exactly one instance and its expiry audited once.
const PURGE: &str = r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local taken = {}
for _, id in ipairs(ids) do
  local k = ARGV[2] .. id
  local a = redis.call('HGET', k, 'a')
  redis.call('DEL', k)
  redis.call('ZREM', KEYS[1], id)
  if a then table.insert(taken, a) end
end
return taken";

/// An attempt as Redis keeps it.
#[derive(Serialize, Deserialize)]
struct StoredAttempt {
    id: String,
    bind_hash: String,
    state: LoginState,
    version: u64,
    created_at: u64,
    expires_at: u64,
    ip: Option<IpAddr>,
    user_agent: String,
    #[serde(default)]
    client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expected_account: Option<i64>,
    /// The account and the name the desktop may see (`null`: none).
    scanner: Option<(i64, Option<String>)>,
    match_code: Option<u8>,
    match_choices: Option<[u8; 3]>,
    refused_scans: u8,
}

impl From<&Attempt> for StoredAttempt {
    fn from(a: &Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            bind_hash: URL_SAFE_NO_PAD.encode(a.bind_hash.0),
            state: a.state,
            version: a.version,
            created_at: a.created_at,
            expires_at: a.expires_at,
            ip: a.requester.ip,
            user_agent: a.requester.user_agent.clone(),
            client: a.requester.client.clone(),
            expected_account: a.requester.expected_account,
            scanner: a
                .scanner
                .as_ref()
                .map(|s| (s.account_id, s.shown_name.clone())),
            match_code: a.match_code,
            match_choices: a.match_choices,
            refused_scans: a.refused_scans,
        }
    }
}

impl StoredAttempt {
    fn into_attempt(self) -> Option<Attempt> {
        let bind: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&self.bind_hash)
            .ok()?
            .try_into()
            .ok()?;
        Some(Attempt {
            id: self.id.parse().ok()?,
            bind_hash: SecretHash(bind),
            state: self.state,
            version: self.version,
            created_at: self.created_at,
            expires_at: self.expires_at,
            requester: Requester {
                ip: self.ip,
                user_agent: self.user_agent,
                client: self.client,
                expected_account: self.expected_account,
            },
            scanner: self.scanner.map(|(account_id, shown_name)| Scanner {
                account_id,
                shown_name,
            }),
            match_code: self.match_code,
            match_choices: self.match_choices,
            refused_scans: self.refused_scans,
        })
    }
}

fn encode(attempt: &Attempt) -> Result<String, StoreError> {
    serde_json::to_string(&StoredAttempt::from(attempt))
        .map_err(|e| StoreError::Unavailable(format!("cannot encode an attempt: {e}")))
}

pub(super) fn decode(json: &str) -> Result<Attempt, StoreError> {
    serde_json::from_str::<StoredAttempt>(json)
        .ok()
        .and_then(StoredAttempt::into_attempt)
        .ok_or_else(|| StoreError::Unavailable("a stored attempt cannot be read".into()))
}

/// When the purge may take an attempt, and when Redis drops it anyway.
fn purge_at(attempt: &Attempt) -> (u64, u64) {
    let purge = attempt.expires_at.saturating_add(FINISHED_RETENTION_MS);
    (purge, purge.saturating_add(KEY_SLACK_MS))
}

pub struct RedisAttemptStore {
    redis: RedisConnection,
    ending: String,
    changes: String,
    write: Script,
    read: Script,
    purge: Script,
}

/// What a compare-and-set found.
enum Cas {
    /// Stored (or, for a check, still the version decided on).
    Done,
    /// Another change came first: the attempt as it now is.
    Moved(Attempt),
    Gone,
}

impl RedisAttemptStore {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            ending: redis.key(&["attempts", "ending"]),
            changes: redis.changes_channel(),
            redis,
            write: Script::new(WRITE),
            read: Script::new(READ),
            purge: Script::new(PURGE),
        }
    }

    fn attempt_key(&self, id: LoginId) -> String {
        self.redis.key(&["attempt", &id.to_string()])
    }

    /// The attempt as Redis holds it now (one round trip); kept as this
    /// instance's copy.
    async fn read(&self, id: LoginId) -> Result<Option<Attempt>, StoreError> {
        let key = self.attempt_key(id);
        let epoch = self.redis.copies.epoch();
        let json: Option<String> = self
            .redis
            .call("read", |mut c| async move {
                self.read.key(&key).invoke_async(&mut c).await
            })
            .await?;
        let attempt = json.as_deref().map(decode).transpose()?;
        match &attempt {
            Some(attempt) => self.redis.copies.keep(attempt, epoch),
            None => self.redis.copies.forget(id),
        }
        Ok(attempt)
    }

    /// This instance's copy of the attempt, or else what Redis holds.
    async fn current(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        match self.redis.copies.get(id, now) {
            Some(copy) => Ok(Some(copy)),
            None => self.read(id).await,
        }
    }

    /// Runs [`WRITE`]: `attempt` stored (if `store`; else only compared) if
    /// the stored version is still `expected` (`None`: if it is new).
    async fn cas(
        &self,
        op: &'static str,
        expected: Option<u64>,
        attempt: &Attempt,
        store: bool,
    ) -> Result<Cas, StoreError> {
        let (json, version) = if store {
            (encode(attempt)?, attempt.version.to_string())
        } else {
            (String::new(), String::new())
        };
        let (purge, drop_at) = purge_at(attempt);
        let id = attempt.id.to_string();
        let key = self.attempt_key(attempt.id);
        let expected = expected.map(|v| v.to_string()).unwrap_or_default();
        let epoch = self.redis.copies.epoch();
        let (code, current): (i64, String) = self
            .redis
            .call(op, |mut c| async move {
                self.write
                    .key(&key)
                    .key(&self.ending)
                    .arg(&expected)
                    .arg(&version)
                    .arg(&json)
                    .arg(drop_at)
                    .arg(purge)
                    .arg(&id)
                    .arg(&self.changes)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match code {
            1 => {
                if store {
                    self.redis.copies.keep(attempt, epoch);
                }
                Ok(Cas::Done)
            }
            0 => {
                let current = decode(&current)?;
                self.redis.copies.keep(&current, epoch);
                Ok(Cas::Moved(current))
            }
            _ => {
                self.redis.copies.forget(attempt.id);
                Ok(Cas::Gone)
            }
        }
    }

    /// Lets `change` decide on the attempt (this instance's copy, or what
    /// Redis holds) and stores the result by compare-and-set, deciding
    /// again on what Redis answers when another instance got there first.
    /// A decision that changed nothing is checked the same way, so that
    /// nothing is answered from a copy that is behind.
    async fn update<T>(
        &self,
        op: &'static str,
        id: LoginId,
        now: UnixMillis,
        mut change: impl FnMut(&mut Attempt) -> T,
    ) -> Result<Option<(Attempt, T, bool)>, StoreError> {
        let Some(mut attempt) = self.current(id, now).await? else {
            return Ok(None);
        };
        for _ in 0..CAS_TRIES {
            let before = attempt.version;
            let mut next = attempt.clone();
            let outcome = change(&mut next);
            let changed = next.version != before;
            match self.cas(op, Some(before), &next, changed).await? {
                Cas::Done => return Ok(Some((next, outcome, changed))),
                Cas::Moved(current) => attempt = current,
                Cas::Gone => return Ok(None),
            }
        }
        Err(StoreError::Unavailable(format!(
            "attempt {id} changed {CAS_TRIES} times while being updated"
        )))
    }
}

/// The round-trip metric's name for a transition.
fn op_of(transition: &Transition) -> &'static str {
    match transition {
        Transition::Scan { .. } => "scan",
        Transition::Approve { .. } => "approve",
        Transition::Deny { .. } => "deny",
        Transition::Redeem => "redeem",
        Transition::Cancel => "cancel",
    }
}

#[async_trait]
impl AttemptStore for RedisAttemptStore {
    async fn insert(&self, attempt: Attempt) -> Result<(), StoreError> {
        match self.cas("create", None, &attempt, true).await? {
            Cas::Done => Ok(()),
            Cas::Moved(_) | Cas::Gone => Err(StoreError::Duplicate),
        }
    }

    /// From this instance's copy when it has one: no round trip. An attempt
    /// whose time ran out comes back expired without being written (every
    /// instance sees the same, and the next change or the purge stores it).
    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        let mut attempt = self.current(id, now).await?;
        if let Some(attempt) = &mut attempt {
            attempt.expire_if_due(now);
        }
        Ok(attempt)
    }

    async fn get_fresh(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        let mut attempt = self.read(id).await?;
        if let Some(attempt) = &mut attempt {
            attempt.expire_if_due(now);
        }
        Ok(attempt)
    }

    async fn apply(
        &self,
        id: LoginId,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<Option<Applied>, StoreError> {
        Ok(self
            .update(op_of(transition), id, now, |attempt| {
                attempt.apply(transition, now, ttls)
            })
            .await?
            .map(|(attempt, outcome, changed)| Applied {
                attempt,
                outcome,
                changed,
                announced: changed,
            }))
    }

    async fn purge(&self, now: UnixMillis) -> Result<Vec<Attempt>, StoreError> {
        let prefix = self.redis.key(&["attempt", ""]);
        self.redis.copies.forget_purged(now);
        let taken: Vec<String> = self
            .redis
            .call("purge", |mut c| async move {
                self.purge
                    .key(&self.ending)
                    .arg(now)
                    .arg(&prefix)
                    .arg(PURGE_BATCH)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let mut purged = Vec::with_capacity(taken.len());
        for json in &taken {
            match decode(json) {
                Ok(mut attempt) => {
                    self.redis.copies.forget(attempt.id);
                    attempt.expire_if_due(now);
                    purged.push(attempt);
                }
                Err(err) => tracing::warn!(error = %err, "purged an unreadable attempt"),
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::{
            attempt::{test_attempt, TransitionError},
            time::now_millis,
        },
        storage::testing,
    };

    /// A's copy is left behind on purpose (it has no subscriber): its
    /// changes are decided on an old version, refused by the
    /// compare-and-set, and decided again on what Redis hands back.
    #[tokio::test]
    async fn a_stale_copy_costs_a_retry_never_a_wrong_answer() {
        let Some(settings) = testing::fresh_redis() else {
            return;
        };
        let open = || RedisConnection::open(&settings.url, &settings.prefix);
        let (ca, cb) = (open().await.unwrap(), open().await.unwrap());
        // A keeps copies as if it listened, but hears nothing.
        ca.copies.drop_all(true);
        let (a, b) = (
            RedisAttemptStore::new(ca.clone()),
            RedisAttemptStore::new(cb),
        );
        let ttls = Ttls::default();
        let now = now_millis();
        let attempt = test_attempt(now);
        a.insert(attempt.clone()).await.unwrap();
        assert_eq!(ca.copies.get(attempt.id, now).unwrap().version, 1);

        let scanner = Scanner {
            account_id: 7,
            shown_name: None,
        };
        let scanned = b
            .apply(attempt.id, &Transition::scan(scanner), now, &ttls)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.get(attempt.id, now).await.unwrap().unwrap().version, 1);

        // On A's copy the approval is refused (not scanned); Redis says
        // otherwise, and it is approved.
        let approve = Transition::Approve {
            account_id: 7,
            match_code: scanned.attempt.match_code.unwrap(),
        };
        let approved = a
            .apply(attempt.id, &approve, now, &ttls)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(approved.outcome, Ok(()));
        assert_eq!(approved.attempt.state, LoginState::Approved);
        assert_eq!(approved.attempt.version, 3);
        assert_eq!(a.get(attempt.id, now).await.unwrap().unwrap().version, 3);

        // Redeemed on B; A's copy says approved, so a cancel would change
        // it: refused by the compare-and-set, decided again, finished.
        b.apply(attempt.id, &Transition::Redeem, now, &ttls)
            .await
            .unwrap()
            .unwrap();
        let cancelled = a
            .apply(attempt.id, &Transition::Cancel, now, &ttls)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            cancelled.outcome,
            Err(TransitionError::Finished(LoginState::Redeemed))
        );
        assert!(!cancelled.changed);
        // A second redeem on A, decided on its copy (now redeemed): the
        // refusal is checked against Redis, which agrees.
        let again = a
            .apply(attempt.id, &Transition::Redeem, now, &ttls)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            again.outcome,
            Err(TransitionError::Finished(LoginState::Redeemed))
        );
        assert_eq!(
            a.get_fresh(attempt.id, now).await.unwrap().unwrap().state,
            LoginState::Redeemed
        );
    }
}
