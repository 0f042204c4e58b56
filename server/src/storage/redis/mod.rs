//! The Redis back-end, for several instances: pending attempts (each change
//! a compare-and-set on its version in a Lua script, expiry by Redis),
//! change notification over pub/sub (one subscriber connection per
//! instance), rate limits every instance shares, and the revocation clock
//! that keeps every instance's session cache honest.
//!
//! Every call gives up after [`OP_TIMEOUT`] and reports
//! [`StoreError::Unavailable`]: a Redis that is down makes requests answer
//! 503 at once, never hang. The connection manager and the subscriber
//! reconnect by themselves.

mod attempts;
mod notifier;
mod shared;

use std::{future::Future, time::Duration};

use redis::{aio::ConnectionManager, aio::ConnectionManagerConfig, Client, RedisError};

pub use attempts::RedisAttemptStore;
pub use notifier::RedisNotifier;
pub use shared::{RedisLimiter, RedisRevocations};

use super::traits::StoreError;

/// Longest any one Redis call may take before the request gives up.
pub const OP_TIMEOUT: Duration = Duration::from_millis(800);
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
        })
    }

    /// Runs one Redis call on the shared connection, within [`OP_TIMEOUT`].
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(OP_TIMEOUT, op(self.manager.clone())).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(StoreError::Unavailable(format!("redis: {err}"))),
            Err(_) => Err(StoreError::Unavailable("redis: timed out".into())),
        }
    }

    /// A key or channel name under this deployment's prefix.
    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        key.push_str(&parts.join(":"));
        key
    }
}
