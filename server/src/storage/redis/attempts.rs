//! Pending attempts in Redis. Each attempt is a hash (`v`: its version,
//! `a`: the attempt as JSON) that Redis expires by itself; a sorted set
//! orders them by when they may be purged. The state machine runs here in
//! Rust; a Lua script stores its result only if the version is still the
//! one read (compare-and-set), so of two instances racing, one wins and the
//! other reads again and re-applies.

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

/// Stores an attempt if the stored version is ARGV[1], or, with ARGV[1]
/// empty, if there is none yet, and announces the change on channel
/// ARGV[7] (unless empty) in the same step. -1: no such attempt; 0: its
/// version moved on (or, for a new one, the id is taken); 1: stored.
const WRITE: &str = r"
local v = redis.call('HGET', KEYS[1], 'v')
if ARGV[1] == '' then
  if v then return 0 end
elseif not v then return -1
elseif v ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'a', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
if ARGV[7] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[6] .. ' ' .. ARGV[2]) end
return 1";

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

fn decode(json: &str) -> Result<Attempt, StoreError> {
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
    purge: Script,
}

impl RedisAttemptStore {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            ending: redis.key(&["attempts", "ending"]),
            changes: redis.changes_channel(),
            redis,
            write: Script::new(WRITE),
            purge: Script::new(PURGE),
        }
    }

    fn attempt_key(&self, id: LoginId) -> String {
        self.redis.key(&["attempt", &id.to_string()])
    }

    async fn read(&self, id: LoginId) -> Result<Option<Attempt>, StoreError> {
        let key = self.attempt_key(id);
        let json: Option<String> = self
            .redis
            .call(|mut c| async move {
                redis::cmd("HGET")
                    .arg(&key)
                    .arg("a")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        json.as_deref().map(decode).transpose()
    }

    /// Runs [`WRITE`] for `attempt`: stored if the stored version is still
    /// `expected` (`None`: if it is new).
    async fn write(&self, expected: Option<u64>, attempt: &Attempt) -> Result<i64, StoreError> {
        let json = encode(attempt)?;
        let (purge, drop_at) = purge_at(attempt);
        let id = attempt.id.to_string();
        let key = self.attempt_key(attempt.id);
        // A new attempt has nobody waiting on it yet: no notice.
        let changes = if expected.is_some() {
            &self.changes[..]
        } else {
            ""
        };
        let expected = expected.map(|v| v.to_string()).unwrap_or_default();
        self.redis
            .call(|mut c| async move {
                self.write
                    .key(&key)
                    .key(&self.ending)
                    .arg(&expected)
                    .arg(attempt.version)
                    .arg(&json)
                    .arg(drop_at)
                    .arg(purge)
                    .arg(&id)
                    .arg(changes)
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    /// Reads the attempt, lets `change` alter it, and stores the result if
    /// it changed, retrying when another instance got there first.
    async fn update<T>(
        &self,
        id: LoginId,
        mut change: impl FnMut(&mut Attempt) -> T,
    ) -> Result<Option<(Attempt, T, bool)>, StoreError> {
        for _ in 0..CAS_TRIES {
            let Some(mut attempt) = self.read(id).await? else {
                return Ok(None);
            };
            let before = attempt.version;
            let outcome = change(&mut attempt);
            if attempt.version == before {
                return Ok(Some((attempt, outcome, false)));
            }
            match self.write(Some(before), &attempt).await? {
                1 => return Ok(Some((attempt, outcome, true))),
                0 => continue,
                _ => return Ok(None),
            }
        }
        Err(StoreError::Unavailable(format!(
            "attempt {id} changed {CAS_TRIES} times while being updated"
        )))
    }
}

#[async_trait]
impl AttemptStore for RedisAttemptStore {
    async fn insert(&self, attempt: Attempt) -> Result<(), StoreError> {
        match self.write(None, &attempt).await? {
            1 => Ok(()),
            _ => Err(StoreError::Duplicate),
        }
    }

    async fn get(&self, id: LoginId, now: UnixMillis) -> Result<Option<Attempt>, StoreError> {
        Ok(self
            .update(id, |attempt| attempt.expire_if_due(now))
            .await?
            .map(|(attempt, _, _)| attempt))
    }

    async fn apply(
        &self,
        id: LoginId,
        transition: &Transition,
        now: UnixMillis,
        ttls: &Ttls,
    ) -> Result<Option<Applied>, StoreError> {
        Ok(self
            .update(id, |attempt| attempt.apply(transition, now, ttls))
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
        let taken: Vec<String> = self
            .redis
            .call(|mut c| async move {
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
                    attempt.expire_if_due(now);
                    purged.push(attempt);
                }
                Err(err) => tracing::warn!(error = %err, "purged an unreadable attempt"),
            }
        }
        Ok(purged)
    }
}
