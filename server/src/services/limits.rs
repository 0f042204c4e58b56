//! Rate limits per client address and per account (governor's GCRA keyed
//! limiters: a few bytes per key, no timer per key). The defaults never
//! bother a person; a script that hammers gets 429 with `Retry-After`.

use std::{
    hash::Hash,
    net::{IpAddr, Ipv4Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

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
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            create: 60,
            poll: 600,
            scan: 30,
            decide: 30,
            sign_in: 10,
        }
    }
}

/// One keyed limiter, or none when its limit is off.
pub struct Limit<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Limit<K> {
    fn per_minute(n: u32) -> Self {
        Self(NonZeroU32::new(n).map(|n| RateLimiter::keyed(Quota::per_minute(n))))
    }

    /// Counts one request for `key`; 429 once the key is over its limit.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            RateLimited {
                retry_after: wait.max(Duration::from_secs(1)),
            }
        })
    }

    fn forget_idle(&self) {
        if let Some(limiter) = &self.0 {
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
}

impl RateLimits {
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Arc::new(Self {
            create: Limit::per_minute(settings.create),
            poll: Limit::per_minute(settings.poll),
            scan_ip: Limit::per_minute(settings.scan),
            scan_account: Limit::per_minute(settings.scan),
            decide_ip: Limit::per_minute(settings.decide),
            decide_account: Limit::per_minute(settings.decide),
            sign_in_ip: Limit::per_minute(settings.sign_in),
            sign_in_username: Limit::per_minute(settings.sign_in),
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
    }
}

/// The key for a request whose peer address is unknown (in-process calls).
pub fn ip_key(ip: Option<IpAddr>) -> IpAddr {
    ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_try_in_a_minute_is_refused_per_key() {
        let limits = RateLimits::new(LimitSettings::default());
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..10 {
            limits.sign_in_ip.check(&ip).unwrap();
        }
        let Err(RateLimited { retry_after }) = limits.sign_in_ip.check(&ip) else {
            panic!("the 11th try must be refused");
        };
        assert!(retry_after >= Duration::from_secs(1));
        limits
            .sign_in_ip
            .check(&IpAddr::from([10, 0, 0, 2]))
            .unwrap();
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::new(LimitSettings {
            create: 0,
            ..LimitSettings::default()
        });
        for _ in 0..1000 {
            limits.create.check(&ip_key(None)).unwrap();
        }
    }
}
