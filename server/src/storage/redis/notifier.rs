//! Change notification across instances: every change the Redis attempt
//! store writes is announced, in the same script, as "id version json" on
//! one channel (and `publish` sends "id version", for other callers); each
//! instance keeps one subscriber connection (one task) that keeps its
//! copies of the attempts (see `copies`) up to date with what it hears,
//! then hands it to its [`LocalNotifier`], where the waiting desktops hold
//! their `watch` receivers. When the connection breaks, and again once it
//! is back, every copy is dropped and every local waiter woken once, since
//! messages may have been missed while it was down.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::{attempts::decode, RedisConnection, PROBE_TIMEOUT};
use crate::{
    domain::attempt::{Attempt, LoginId},
    storage::{
        memory::LocalNotifier,
        traits::{ChangeNotifier, StoreError},
    },
};

/// The longest wait between two tries to reconnect the subscriber.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Announces "ARGV[2]" on channel ARGV[1] (a script, as every call is).
const PUBLISH: &str = r"return redis.call('PUBLISH', ARGV[1], ARGV[2])";

pub struct RedisNotifier {
    redis: RedisConnection,
    channel: String,
    local: Arc<LocalNotifier>,
    publish: redis::Script,
}

impl RedisNotifier {
    /// Starts this instance's subscriber task; it runs until the process ends.
    pub fn start(redis: RedisConnection) -> Self {
        let channel = redis.changes_channel();
        let local = Arc::new(LocalNotifier::default());
        tokio::spawn(subscribe_forever(
            redis.clone(),
            channel.clone(),
            local.clone(),
        ));
        Self {
            redis,
            channel,
            local,
            publish: redis::Script::new(PUBLISH),
        }
    }
}

#[async_trait]
impl ChangeNotifier for RedisNotifier {
    fn subscribe(&self, id: LoginId) -> watch::Receiver<u64> {
        self.local.subscribe(id)
    }

    async fn publish(&self, id: LoginId, version: u64) -> Result<(), StoreError> {
        // This instance's waiters need no round trip; the others hear it
        // through Redis (and so do these, harmlessly, once more).
        self.local.wake(id, version);
        let message = format!("{id} {version}");
        let channel = &self.channel;
        self.redis
            .call("publish", |mut c| async move {
                self.publish
                    .arg(channel)
                    .arg(&message)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    fn forget_idle(&self) {
        self.local.forget_idle();
    }
}

/// Keeps one subscription open, reconnecting with a growing pause.
async fn subscribe_forever(redis: RedisConnection, channel: String, local: Arc<LocalNotifier>) {
    let client = &redis.client;
    let mut backoff = Duration::from_millis(50);
    let mut first = true;
    loop {
        match tokio::time::timeout(PROBE_TIMEOUT, subscribed(client, &channel)).await {
            Ok(Ok(mut pubsub)) => {
                backoff = Duration::from_millis(50);
                redis.subscriber_saw(true);
                // What was copied before may have missed a message.
                redis.copies.drop_all(true);
                if first {
                    first = false;
                } else {
                    metrics::counter!("qrlogin_redis_reconnects_total").increment(1);
                    tracing::info!("redis subscriber reconnected");
                    local.wake_all();
                }
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                    if let Some((id, version, attempt)) = parse(&payload) {
                        match attempt {
                            Some(attempt) => redis.copies.heard(attempt),
                            None => redis.copies.heard_version(id, version),
                        }
                        // After the copy: a woken desktop reads the new one.
                        local.wake(id, version);
                    }
                }
                tracing::warn!("redis subscriber lost its connection; reconnecting");
                // Every call now fails at once (but the probes), and the
                // waiting desktops read their attempt again: they learn at
                // once that Redis is away (503) rather than at their wait's
                // end, and keep retrying.
                redis.subscriber_saw(false);
                redis.copies.drop_all(false);
                local.wake_all();
            }
            Ok(Err(err)) => tracing::debug!(error = %err, "redis subscriber cannot connect"),
            Err(_) => tracing::debug!("redis subscriber timed out connecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribed(
    client: &redis::Client,
    channel: &str,
) -> Result<redis::aio::PubSub, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// "id version", as `publish` sends it, or "id version json", as the
/// attempt store announces a change (a JSON that cannot be read is as
/// none: the copy is dropped, and read again when needed).
fn parse(payload: &[u8]) -> Option<(LoginId, u64, Option<Attempt>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (id, rest) = text.split_once(' ')?;
    let (version, json) = match rest.split_once(' ') {
        Some((version, json)) => (version, Some(json)),
        None => (rest, None),
    };
    let (id, version) = (id.parse().ok()?, version.parse().ok()?);
    let attempt = json
        .and_then(|json| decode(json).ok())
        .filter(|a: &Attempt| a.id == id && a.version == version);
    Some((id, version, attempt))
}
