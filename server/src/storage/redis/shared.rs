//! What every instance shares through Redis besides attempts: the rate
//! limits and the session revocation clock.

use std::{num::NonZeroU32, time::Duration};

use async_trait::async_trait;
use redis::Script;

use super::RedisConnection;
use crate::storage::traits::{RevocationClock, SharedLimiter, StoreError};

/// GCRA (the algorithm governor uses for the single-instance limits): a
/// key holds its "theoretical arrival time"; a request is allowed while
/// that is less than a burst ahead of now. Time is Redis's own, so the
/// instances' clocks do not matter. Answers 0, or the milliseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - burst
if allowed_at > now then return math.ceil((allowed_at - now) / 1000) end
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
return 0";

pub struct RedisLimiter {
    redis: RedisConnection,
    gcra: Script,
}

impl RedisLimiter {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            gcra: Script::new(GCRA),
        }
    }
}

#[async_trait]
impl SharedLimiter for RedisLimiter {
    async fn check(
        &self,
        limit: &str,
        key_: &str,
        per_minute: NonZeroU32,
    ) -> Result<Option<Duration>, StoreError> {
        self.gcra(limit, key_, 60_000_000, per_minute).await
    }

    async fn check_per_hour(
        &self,
        limit: &str,
        key_: &str,
        per_hour: NonZeroU32,
    ) -> Result<Option<Duration>, StoreError> {
        self.gcra(limit, key_, 3_600_000_000, per_hour).await
    }
}

impl RedisLimiter {
    /// `n` per `period_us` microseconds, in a burst or spread out.
    async fn gcra(
        &self,
        limit: &str,
        key_: &str,
        period_us: u64,
        n: NonZeroU32,
    ) -> Result<Option<Duration>, StoreError> {
        let name = self.redis.key(&["limit", limit, key_]);
        let interval_us = period_us / u64::from(n.get());
        let wait_ms: u64 = self
            .redis
            .call(|mut c| async move {
                self.gcra
                    .key(&name)
                    .arg(interval_us)
                    .arg(n.get())
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok((wait_ms > 0).then(|| Duration::from_millis(wait_ms)))
    }
}

/// A counter every revocation advances: an instance trusts its cached
/// sessions only while the counter still reads what it read when it cached
/// them, so a session revoked on one instance is refused on all at once.
pub struct RedisRevocations {
    redis: RedisConnection,
    key: String,
}

impl RedisRevocations {
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            key: redis.key(&["sessions", "revocations"]),
            redis,
        }
    }
}

#[async_trait]
impl RevocationClock for RedisRevocations {
    async fn current(&self) -> Result<u64, StoreError> {
        let key = &self.key;
        let value: Option<u64> = self
            .redis
            .call(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(value.unwrap_or(0))
    }

    async fn advance(&self) -> Result<(), StoreError> {
        let key = &self.key;
        self.redis
            .call(
                |mut c| async move { redis::cmd("INCR").arg(key).query_async::<u64>(&mut c).await },
            )
            .await?;
        Ok(())
    }
}
