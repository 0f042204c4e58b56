//! Rate limits per client address and per account. One process counts in
//! memory (governor's GCRA keyed limiters: a few bytes per key, no timer
//! per key); several instances count together in a [`SharedLimiter`]
//! (Redis, the same algorithm), so the 11th try is refused whichever
//! instance gets it. The defaults never bother a person; a script that
//! hammers gets 429 with `Retry-After`. A shared limiter that cannot be
//! reached refuses (503): a login server does not drop its brute-force
//! defence when a store is down.

use std::{
    fmt::Display,
    hash::Hash,
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::storage::{SharedLimiter, StoreError};

/// Refused: the key is over its limit; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many requests; try again in {retry_after:?}")]
pub struct RateLimited {
    pub retry_after: Duration,
}

/// Requests per minute allowed per key; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// New login attempts per client address.
    pub create: u32,
    /// Status reads and long polls per client address.
    pub poll: u32,
    /// Scans per client address and per account.
    pub scan: u32,
    /// Approve / deny calls per client address and per account.
    pub decide: u32,
    /// Sign-in tries per client address and per username.
    pub sign_in: u32,
    /// Device-flow user codes looked up, per client address and per
    /// account: at 10 a minute, finding one live code among 20^8 takes
    /// centuries.
    pub user_code: u32,
    /// OpenID Connect token, device-authorization and revocation requests
    /// per client address.
    pub token: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            create: 60,
            poll: 600,
            scan: 30,
            decide: 30,
            sign_in: 10,
            user_code: 10,
            token: 300,
        }
    }
}

/// Why a request was not let through.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error(transparent)]
    Limited(#[from] RateLimited),
    /// The shared limiter cannot be reached.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a limit counts.
enum Counter<K: Hash + Eq + Clone> {
    Off,
    Local(DefaultKeyedRateLimiter<K>),
    Shared {
        name: &'static str,
        per_minute: NonZeroU32,
        limiter: Arc<dyn SharedLimiter>,
    },
}

/// One keyed limit.
pub struct Limit<K: Hash + Eq + Clone>(Counter<K>);

impl<K: Hash + Eq + Clone + Display> Limit<K> {
    fn per_minute(name: &'static str, n: u32, shared: &Option<Arc<dyn SharedLimiter>>) -> Self {
        Self(match (NonZeroU32::new(n), shared) {
            (None, _) => Counter::Off,
            (Some(n), None) => Counter::Local(RateLimiter::keyed(Quota::per_minute(n))),
            (Some(per_minute), Some(limiter)) => Counter::Shared {
                name,
                per_minute,
                limiter: limiter.clone(),
            },
        })
    }

    /// Counts one request for `key`; 429 once the key is over its limit.
    pub async fn check(&self, key: &K) -> Result<(), LimitError> {
        let wait = match &self.0 {
            Counter::Off => None,
            Counter::Local(limiter) => limiter.check_key(key).err().map(|not_until| {
                not_until.wait_time_from(governor::clock::DefaultClock::default().now())
            }),
            Counter::Shared {
                name,
                per_minute,
                limiter,
            } => limiter.check(name, &key.to_string(), *per_minute).await?,
        };
        match wait {
            None => Ok(()),
            Some(wait) => Err(RateLimited {
                retry_after: wait.max(Duration::from_secs(1)),
            }
            .into()),
        }
    }

    fn forget_idle(&self) {
        if let Counter::Local(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

pub struct RateLimits {
    pub create: Limit<IpAddr>,
    pub poll: Limit<IpAddr>,
    pub scan_ip: Limit<IpAddr>,
    pub scan_account: Limit<i64>,
    pub decide_ip: Limit<IpAddr>,
    pub decide_account: Limit<i64>,
    pub sign_in_ip: Limit<IpAddr>,
    /// Keyed by the username as typed (folded), whether it exists or not,
    /// so the answer tells nothing about existence.
    pub sign_in_username: Limit<String>,
    pub user_code_ip: Limit<IpAddr>,
    pub user_code_account: Limit<i64>,
    pub token: Limit<IpAddr>,
}

impl RateLimits {
    /// Limits counted by `shared` for every instance, or in this process.
    pub fn new(settings: LimitSettings, shared: Option<Arc<dyn SharedLimiter>>) -> Arc<Self> {
        let s = &shared;
        Arc::new(Self {
            create: Limit::per_minute("create", settings.create, s),
            poll: Limit::per_minute("poll", settings.poll, s),
            scan_ip: Limit::per_minute("scan-ip", settings.scan, s),
            scan_account: Limit::per_minute("scan-account", settings.scan, s),
            decide_ip: Limit::per_minute("decide-ip", settings.decide, s),
            decide_account: Limit::per_minute("decide-account", settings.decide, s),
            sign_in_ip: Limit::per_minute("sign-in-ip", settings.sign_in, s),
            sign_in_username: Limit::per_minute("sign-in-username", settings.sign_in, s),
            user_code_ip: Limit::per_minute("user-code-ip", settings.user_code, s),
            user_code_account: Limit::per_minute("user-code-account", settings.user_code, s),
            token: Limit::per_minute("token", settings.token, s),
        })
    }

    /// Drops the state of keys that are back to a full allowance.
    pub fn forget_idle(&self) {
        self.create.forget_idle();
        self.poll.forget_idle();
        self.scan_ip.forget_idle();
        self.scan_account.forget_idle();
        self.decide_ip.forget_idle();
        self.decide_account.forget_idle();
        self.sign_in_ip.forget_idle();
        self.sign_in_username.forget_idle();
        self.user_code_ip.forget_idle();
        self.user_code_account.forget_idle();
        self.token.forget_idle();
    }
}

/// The key for a request whose peer address is unknown (in-process calls).
pub fn ip_key(ip: Option<IpAddr>) -> IpAddr {
    ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_eleventh_try_in_a_minute_is_refused_per_key() {
        let limits = RateLimits::new(LimitSettings::default(), None);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..10 {
            limits.sign_in_ip.check(&ip).await.unwrap();
        }
        let Err(LimitError::Limited(RateLimited { retry_after })) =
            limits.sign_in_ip.check(&ip).await
        else {
            panic!("the 11th try must be refused");
        };
        assert!(retry_after >= Duration::from_secs(1));
        limits
            .sign_in_ip
            .check(&IpAddr::from([10, 0, 0, 2]))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn zero_turns_a_limit_off() {
        let limits = RateLimits::new(
            LimitSettings {
                create: 0,
                ..LimitSettings::default()
            },
            None,
        );
        for _ in 0..1000 {
            limits.create.check(&ip_key(None)).await.unwrap();
        }
    }
}
