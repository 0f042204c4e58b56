//! What every instance shares through Redis besides attempts: the rate
//! limits and the session revocation clock.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;

use super::RedisConnection;
use crate::storage::{
    scope,
    traits::{RevocationClock, SharedCheck, SharedLimiter, StoreError},
};

/// The gate: every limit of one request in one step, and the revocation
/// clock. Each limit is a GCRA (the algorithm governor uses for the
/// single-instance limits): a key holds its "theoretical arrival time"; a
/// request is allowed while that is less than a burst ahead of now. Time
/// is Redis's own, so the instances' clocks do not matter. All are counted
/// if all allow, none if one refuses. The
/// revocation clock read in the same step, so that the session cache needs
/// no call of its own. KEYS[1]: the clock; KEYS[i + 1], ARGV[2i - 1],
/// ARGV[2i]: a limit's key, interval (µs) and burst. Answers {the longest
/// wait in ms (0: allowed), the clock}.
const GATE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local clock = tonumber(redis.call('GET', KEYS[1]) or '0')
local tats = {}
local wait = 0
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 3])
  local burst = interval * tonumber(ARGV[2 * i - 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local next_tat = tat + interval
  local allowed_at = next_tat - burst
  if allowed_at > now then
    local w = math.ceil((allowed_at - now) / 1000)
    if w > wait then wait = w end
  end
  tats[i] = next_tat
end
if wait == 0 then
  for i = 2, #KEYS do
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
  end
end
return {wait, clock}";

/// The revocation clock's key.
fn clock_key(redis: &RedisConnection) -> String {
    redis.key(&["sessions", "revocations"])
}

pub struct RedisLimiter {
    redis: RedisConnection,
    gate: Script,
    clock: String,
}

impl RedisLimiter {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            clock: clock_key(&redis),
            redis,
            gate: Script::new(GATE),
        }
    }
}

#[async_trait]
impl SharedLimiter for RedisLimiter {
    /// One round trip, which also reads the revocation clock for the rest
    /// of the request (see [`scope`]).
    async fn check_all(&self, checks: &[SharedCheck]) -> Result<Option<Duration>, StoreError> {
        let mut gate = self.gate.key(&self.clock);
        for check in checks {
            let period_us = u64::try_from(check.period.as_micros()).unwrap_or(u64::MAX);
            gate.key(self.redis.key(&["limit", check.limit, &check.key]))
                .arg(period_us / u64::from(check.n.get()))
                .arg(check.n.get());
        }
        let (wait_ms, clock): (u64, u64) = self
            .redis
            .call(
                "gate",
                |mut c| async move { gate.invoke_async(&mut c).await },
            )
            .await?;
        scope::saw_clock(clock);
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}

/// A counter every revocation advances: an instance trusts its cached
/// sessions only while the counter still reads what it read when it cached
/// them, so a session revoked on one instance is refused on all at once.
pub struct RedisRevocations {
    redis: RedisConnection,
    key: String,
    read: Script,
    advance: Script,
}

impl RedisRevocations {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            key: clock_key(&redis),
            redis,
            // Scripts, as every call is (see the attempt store's READ).
            read: Script::new(r"return tonumber(redis.call('GET', KEYS[1]) or '0')"),
            advance: Script::new(r"return redis.call('INCR', KEYS[1])"),
        }
    }
}

#[async_trait]
impl RevocationClock for RedisRevocations {
    async fn current(&self) -> Result<u64, StoreError> {
        let key = &self.key;
        self.redis
            .call("clock", |mut c| async move {
                self.read.key(key).invoke_async(&mut c).await
            })
            .await
    }

    async fn advance(&self) -> Result<(), StoreError> {
        let key = &self.key;
        self.redis
            .call("revoke", |mut c| async move {
                self.advance.key(key).invoke_async::<u64>(&mut c).await
            })
            .await?;
        Ok(())
    }
}
