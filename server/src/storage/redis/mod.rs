//! The Redis back-end, for several instances: pending attempts (each change
//! a compare-and-set on its version in a Lua script, expiry by Redis),
//! change notification over pub/sub (one subscriber connection per
//! instance), rate limits every instance shares, and the revocation clock
//! that keeps every instance's session cache honest.
//!
//! A Redis that is down is seen at once (a connection refused or reset, or
//! the subscriber's connection lost): that call reports
//! [`StoreError::Unavailable`], and so do the others, at once, while one probe every [`PROBE_EVERY`] (given at most
//! [`PROBE_TIMEOUT`]) finds out whether Redis is back. So requests answer
//! 503 within a second and never hang. A call that is merely slow (a
//! burst of tens of thousands of polls queued on the connection) waits up
//! to [`OP_TIMEOUT`] and fails alone. The connection manager and the
//! subscriber reconnect by themselves.

mod attempts;
mod copies;
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
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a probe may take while Redis is known to be down (and the
/// subscriber's try to reconnect).
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
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
    /// This instance's copies of attempts, kept fresh by its subscriber.
    copies: Arc<copies::LocalCopies>,
}

/// How a call may go to Redis.
enum Probe {
    /// Redis answers: the call goes.
    Up,
    /// Redis is down: this call is the one that looks whether it is back.
    WhileDown,
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

    /// Whether this call may go to Redis, and as what.
    fn may_try(&self) -> Option<Probe> {
        let next = self.next_probe_ms.load(Ordering::Acquire);
        if next == 0 {
            return Some(Probe::Up);
        }
        let now = self.now_ms();
        let then = now + PROBE_EVERY.as_millis() as u64;
        let probe = now >= next
            && self
                .next_probe_ms
                .compare_exchange(next, then, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
        probe.then_some(Probe::WhileDown)
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
            // Reconnecting is quick or fails: a probe must end in time.
            .set_connection_timeout(Some(PROBE_TIMEOUT))
            .set_response_timeout(Some(OP_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
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
            copies: Arc::default(),
        })
    }

    /// Runs one Redis call (one round trip, counted in
    /// `qrlogin_redis_round_trips_total` under `name`) on the shared
    /// connection, within [`OP_TIMEOUT`].
    async fn call<T, F, Fut>(&self, name: &'static str, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        metrics::counter!("qrlogin_redis_round_trips_total", "op" => name).increment(1);
        let timeout = match self.health.may_try() {
            Some(Probe::Up) => OP_TIMEOUT,
            Some(Probe::WhileDown) => PROBE_TIMEOUT,
            None => return Err(StoreError::Unavailable("redis: down".into())),
        };
        match tokio::time::timeout(timeout, op(self.manager.clone())).await {
            Ok(Ok(value)) => {
                self.health.succeeded();
                Ok(value)
            }
            Ok(Err(err)) => {
                if is_io_failure(&err) {
                    self.health.failed();
                } else {
                    // Redis answered (with an error): it is up.
                    self.health.succeeded();
                }
                Err(StoreError::Unavailable(format!("redis: {err}")))
            }
            Err(_) => {
                // Slow is not down, unless this was a probe while down.
                if timeout == PROBE_TIMEOUT {
                    self.health.failed();
                }
                Err(StoreError::Unavailable("redis: timed out".into()))
            }
        }
    }

    /// The channel every attempt change is announced on: "{id} {version}".
    fn changes_channel(&self) -> String {
        self.key(&["changes"])
    }

    /// What the subscriber saw of the connection: lost (every call fails
    /// at once but the probes) or back.
    fn subscriber_saw(&self, up: bool) {
        if up {
            self.health.succeeded();
        } else {
            self.health.failed();
        }
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
