//! The Redis back-end, for several instances: pending attempts (each change
//! a compare-and-set on its version in a Lua script, expiry by Redis),
//! change notification over pub/sub (one subscriber connection per
//! instance), rate limits every instance shares, and the revocation clock
//! that keeps every instance's session cache honest.
//!
//! Every call gives up after [`OP_TIMEOUT`] and reports
//! [`StoreError::Unavailable`]; once a call has failed, the others fail at
//! once while one probe every [`PROBE_EVERY`] finds out whether Redis is
//! back. So a Redis that is down makes requests answer 503 within a
//! second, never hang. The connection manager and the subscriber reconnect
//! by themselves.

mod attempts;
mod notifier;
mod shared;

use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client, RedisError};

pub use attempts::RedisAttemptStore;
pub use notifier::RedisNotifier;
pub use shared::{RedisLimiter, RedisRevocations};

use super::traits::StoreError;

/// Longest any one Redis call may take before the request gives up.
pub const OP_TIMEOUT: Duration = Duration::from_millis(500);
/// While Redis is down, how often one call tries it.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// Every key and channel qrlogin uses starts with this by default.
pub const DEFAULT_PREFIX: &str = "qrlogin:";

/// One multiplexed connection that reconnects by itself, shared by every
/// request of this instance, and the client that makes the subscriber's.
#[derive(Clone)]
pub struct RedisConnection {
    client: Client,
    manager: ConnectionManager,
    /// Starts every key and channel: deployments (or tests) sharing one
    /// Redis stay apart.
    prefix: String,
    health: Arc<Health>,
}

/// Whether Redis answered lately.
#[derive(Default)]
struct Health {
    /// 0 while Redis answers; after a failure, when (ms since start) the
    /// next call may try it.
    next_probe_ms: AtomicU64,
    started: std::sync::OnceLock<tokio::time::Instant>,
}

impl Health {
    fn now_ms(&self) -> u64 {
        // Never 0, which means "up".
        self.started
            .get_or_init(tokio::time::Instant::now)
            .elapsed()
            .as_millis() as u64
            + 1
    }

    /// Whether this call may go to Redis.
    fn may_try(&self) -> bool {
        let next = self.next_probe_ms.load(Ordering::Acquire);
        if next == 0 {
            return true;
        }
        let now = self.now_ms();
        let then = now + PROBE_EVERY.as_millis() as u64;
        now >= next
            && self
                .next_probe_ms
                .compare_exchange(next, then, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn succeeded(&self) {
        self.next_probe_ms.store(0, Ordering::Release);
    }

    fn failed(&self) {
        let then = self.now_ms() + PROBE_EVERY.as_millis() as u64;
        self.next_probe_ms.store(then, Ordering::Release);
    }
}

impl RedisConnection {
    /// Connects to `url` (`redis://host:port[/db]`, `redis+unix:///path`);
    /// every key will start with `prefix`.
    pub async fn open(url: &str, prefix: &str) -> Result<Self, String> {
        let client = Client::open(url).map_err(|e| e.to_string())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = tokio::time::timeout(
            OP_TIMEOUT * 2,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| "timed out connecting".to_owned())?
        .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            manager,
            prefix: prefix.to_owned(),
            health: Arc::default(),
        })
    }

    /// Runs one Redis call on the shared connection, within [`OP_TIMEOUT`].
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        if !self.health.may_try() {
            return Err(StoreError::Unavailable("redis: down".into()));
        }
        let result = match tokio::time::timeout(OP_TIMEOUT, op(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) if !is_io_failure(&err) => {
                // Redis answered (with an error): it is up.
                self.health.succeeded();
                return Err(StoreError::Unavailable(format!("redis: {err}")));
            }
            Ok(Err(err)) => Err(StoreError::Unavailable(format!("redis: {err}"))),
            Err(_) => Err(StoreError::Unavailable("redis: timed out".into())),
        };
        match &result {
            Ok(_) => self.health.succeeded(),
            Err(_) => self.health.failed(),
        }
        result
    }

    /// The channel every attempt change is announced on: "{id} {version}".
    fn changes_channel(&self) -> String {
        self.key(&["changes"])
    }

    /// A key or channel name under this deployment's prefix.
    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }
}

/// Whether `err` says Redis could not be reached (rather than that it
/// refused a command).
fn is_io_failure(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}
