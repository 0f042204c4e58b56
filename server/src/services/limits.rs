//! Rate limits per client address and per account. One process counts in
//! memory (governor's GCRA keyed limiters: a few bytes per key, no timer
//! per key); several instances count together in a [`SharedLimiter`]
//! (Redis, the same algorithm), so the 11th try is refused whichever
//! instance gets it. The defaults never bother a person; a script that
//! hammers gets 429 with `Retry-After`. A shared limiter that cannot be
//! reached refuses (503): a login server does not drop its brute-force
//! defence when a store is down.
//!
//! A client address is an IPv4 address, or an IPv6 network of
//! `ipv6_prefix` bits (a /64 by default: one customer's, who can use any
//! of its 2^64 addresses). And however many addresses a flood comes from,
//! at most [`HashSlots`] password hashes run at once.

use std::{
    fmt::Display,
    hash::Hash,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::storage::{SharedCheck, SharedLimiter, StoreError};

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
    /// How many leading bits of an IPv6 address are one client (1..=128).
    pub ipv6_prefix: u8,
    /// Password hashes that may run at once for sign-ins (at least 1).
    pub password_hashes: usize,
}

/// The default [`LimitSettings::ipv6_prefix`]: a /64, the smallest network
/// a provider hands a customer (SLAAC needs one).
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The most [`LimitSettings::password_hashes`] may be: at 19 MiB a hash,
/// 1024 at once is 19 GiB; more is a typo.
pub const MAX_PASSWORD_HASHES: usize = 1024;

/// The default [`LimitSettings::password_hashes`]: twice the CPUs, enough
/// to keep them all busy, and at 19 MiB a hash, bounded memory.
pub fn default_password_hashes() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get().saturating_mul(2))
        .min(MAX_PASSWORD_HASHES)
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
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
            password_hashes: default_password_hashes(),
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
        n: NonZeroU32,
        period: Duration,
        limiter: Arc<dyn SharedLimiter>,
    },
}

/// One limit's count for one request, made with the request's others by
/// [`gate`]: in one round trip where they are shared.
pub enum Check {
    Off,
    /// Counted in this process already: the wait, if refused.
    Local(Option<Duration>),
    Shared(SharedCheck, Arc<dyn SharedLimiter>),
}

/// Counts one request against each of `checks` (the shared ones in one
/// call: all counted if all allow, none if one refuses); 429 with the
/// longest wait once one is over its limit.
pub async fn gate(checks: impl IntoIterator<Item = Check>) -> Result<(), LimitError> {
    let mut wait: Option<Duration> = None;
    let mut shared = Vec::new();
    let mut limiter = None;
    for check in checks {
        match check {
            Check::Off => {}
            Check::Local(refused) => wait = wait.max(refused),
            Check::Shared(check, by) => {
                shared.push(check);
                limiter = Some(by);
            }
        }
    }
    if let Some(limiter) = limiter {
        // Every limit of one process has the same shared limiter.
        wait = wait.max(limiter.check_all(&shared).await?);
    }
    match wait {
        None => Ok(()),
        Some(wait) => Err(RateLimited {
            retry_after: wait.max(Duration::from_secs(1)),
        }
        .into()),
    }
}

/// One keyed limit.
pub struct Limit<K: Hash + Eq + Clone>(Counter<K>);

impl<K: Hash + Eq + Clone + Display> Limit<K> {
    fn per_minute(name: &'static str, n: u32, shared: &Option<Arc<dyn SharedLimiter>>) -> Self {
        Self::per(name, n, shared, Duration::from_secs(60), Quota::per_minute)
    }

    fn per_hour(name: &'static str, n: u32, shared: &Option<Arc<dyn SharedLimiter>>) -> Self {
        Self::per(name, n, shared, Duration::from_secs(3600), Quota::per_hour)
    }

    fn per(
        name: &'static str,
        n: u32,
        shared: &Option<Arc<dyn SharedLimiter>>,
        period: Duration,
        quota: fn(NonZeroU32) -> Quota,
    ) -> Self {
        Self(match (NonZeroU32::new(n), shared) {
            (None, _) => Counter::Off,
            (Some(n), None) => Counter::Local(RateLimiter::keyed(quota(n))),
            (Some(n), Some(limiter)) => Counter::Shared {
                name,
                n,
                period,
                limiter: limiter.clone(),
            },
        })
    }

    /// This limit's count of one request for `key`, for [`gate`] (a
    /// limit counted in this process counts it now).
    pub fn of(&self, key: &K) -> Check {
        match &self.0 {
            Counter::Off => Check::Off,
            Counter::Local(limiter) => {
                Check::Local(limiter.check_key(key).err().map(|not_until| {
                    not_until.wait_time_from(governor::clock::DefaultClock::default().now())
                }))
            }
            Counter::Shared {
                name,
                n,
                period,
                limiter,
            } => Check::Shared(
                SharedCheck {
                    limit: name,
                    key: key.to_string(),
                    period: *period,
                    n: *n,
                },
                limiter.clone(),
            ),
        }
    }

    /// Counts one request for `key`; 429 once the key is over its limit.
    pub async fn check(&self, key: &K) -> Result<(), LimitError> {
        gate([self.of(key)]).await
    }

    fn forget_idle(&self) {
        if let Counter::Local(limiter) = &self.0 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// One limit per client address: an IPv4 address, or the IPv6 network of
/// the configured prefix length its address is in.
pub struct IpLimit {
    limit: Limit<IpAddr>,
    ipv6_prefix: u8,
}

impl IpLimit {
    fn per_minute(
        name: &'static str,
        n: u32,
        shared: &Option<Arc<dyn SharedLimiter>>,
        ipv6_prefix: u8,
    ) -> Self {
        Self {
            limit: Limit::per_minute(name, n, shared),
            ipv6_prefix,
        }
    }

    /// Counts one request from `ip`'s network; 429 once it is over its limit.
    pub async fn check(&self, ip: &IpAddr) -> Result<(), LimitError> {
        gate([self.of(ip)]).await
    }

    /// This limit's count of one request from `ip`'s network, for [`gate`].
    pub fn of(&self, ip: &IpAddr) -> Check {
        self.limit.of(&client_network(*ip, self.ipv6_prefix))
    }

    /// `n` an hour per client address (open sign-ups).
    fn per_hour(
        name: &'static str,
        n: u32,
        shared: &Option<Arc<dyn SharedLimiter>>,
        ipv6_prefix: u8,
    ) -> Self {
        Self {
            limit: Limit::per_hour(name, n, shared),
            ipv6_prefix,
        }
    }

    fn forget_idle(&self) {
        self.limit.forget_idle();
    }
}

/// Open sign-ups begun per hour per client address (an IPv4 address or
/// an IPv6 network): a person makes one account, a script a handful.
pub const JOIN_PER_HOUR: u32 = 5;

/// The key a client address counts under: an IPv4 address (an IPv4-mapped
/// IPv6 one too) as itself, an IPv6 address with all but its first
/// `ipv6_prefix` bits zeroed.
pub fn client_network(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// How long a sign-in waits for a password-hash slot before it is refused.
pub const HASH_SLOT_WAIT: Duration = Duration::from_secs(1);

/// A bound on the password hashes (argon2id: ≈20 ms of CPU and 19 MiB
/// each) running at once. A request waits at most [`HASH_SLOT_WAIT`] for a
/// slot and is then refused (429, `Retry-After`), so a flood from however
/// many addresses can neither exhaust memory nor grow a queue: each waiter
/// is gone within the wait.
pub struct HashSlots {
    slots: Arc<Semaphore>,
    wait: Duration,
}

/// A slot a password hash runs in; the next hash may start once it drops.
pub type HashSlot = OwnedSemaphorePermit;

impl HashSlots {
    /// `n` slots (at least one), waited for at most `wait`.
    pub fn new(n: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(n.max(1))),
            wait,
        }
    }

    /// A slot for one hash, waiting at most the configured time.
    pub async fn acquire(&self) -> Result<HashSlot, RateLimited> {
        let busy = RateLimited {
            retry_after: Duration::from_secs(1),
        };
        if let Ok(slot) = self.slots.clone().try_acquire_owned() {
            return Ok(slot);
        }
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            // Timed out (or, never, closed).
            Ok(Err(_)) | Err(_) => {
                metrics::counter!("qrlogin_password_hashes_refused_total").increment(1);
                tracing::warn!("every password-hash slot is busy: a sign-in is refused");
                Err(busy)
            }
        }
    }
}

pub struct RateLimits {
    pub create: IpLimit,
    pub poll: IpLimit,
    pub scan_ip: IpLimit,
    pub scan_account: Limit<i64>,
    pub decide_ip: IpLimit,
    pub decide_account: Limit<i64>,
    pub sign_in_ip: IpLimit,
    /// Keyed by the username as typed (folded), whether it exists or not,
    /// so the answer tells nothing about existence.
    pub sign_in_username: Limit<String>,
    pub user_code_ip: IpLimit,
    pub user_code_account: Limit<i64>,
    pub token: IpLimit,
    /// Open sign-ups (`/join`), [`JOIN_PER_HOUR`] per client address.
    pub join_ip: IpLimit,
    /// The password hashes sign-ins may run at once (in this process).
    pub hashes: HashSlots,
}

impl RateLimits {
    /// Limits counted by `shared` for every instance, or in this process.
    pub fn new(settings: LimitSettings, shared: Option<Arc<dyn SharedLimiter>>) -> Arc<Self> {
        let s = &shared;
        let v6 = settings.ipv6_prefix;
        Arc::new(Self {
            create: IpLimit::per_minute("create", settings.create, s, v6),
            poll: IpLimit::per_minute("poll", settings.poll, s, v6),
            scan_ip: IpLimit::per_minute("scan-ip", settings.scan, s, v6),
            scan_account: Limit::per_minute("scan-account", settings.scan, s),
            decide_ip: IpLimit::per_minute("decide-ip", settings.decide, s, v6),
            decide_account: Limit::per_minute("decide-account", settings.decide, s),
            sign_in_ip: IpLimit::per_minute("sign-in-ip", settings.sign_in, s, v6),
            sign_in_username: Limit::per_minute("sign-in-username", settings.sign_in, s),
            user_code_ip: IpLimit::per_minute("user-code-ip", settings.user_code, s, v6),
            user_code_account: Limit::per_minute("user-code-account", settings.user_code, s),
            token: IpLimit::per_minute("token", settings.token, s, v6),
            join_ip: IpLimit::per_hour("join-ip", JOIN_PER_HOUR, s, v6),
            hashes: HashSlots::new(settings.password_hashes, HASH_SLOT_WAIT),
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
        self.join_ip.forget_idle();
    }
}

/// The address a request counts under: its client's (which an
/// [`IpLimit`] narrows to the client's network), or, when that is unknown
/// (in-process calls; a trusted proxy that could not name the client), one
/// address all such requests share.
pub fn ip_key(ip: Option<IpAddr>) -> IpAddr {
    ip.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sixth_sign_up_in_an_hour_is_refused_per_network() {
        let limits = RateLimits::new(LimitSettings::default(), None);
        let ip = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..JOIN_PER_HOUR {
            limits.join_ip.check(&ip).await.unwrap();
        }
        let Err(LimitError::Limited(RateLimited { retry_after })) = limits.join_ip.check(&ip).await
        else {
            panic!("the 6th sign-up must be refused");
        };
        assert!(retry_after > Duration::from_secs(60), "{retry_after:?}");
        limits
            .join_ip
            .check(&IpAddr::from([10, 0, 0, 2]))
            .await
            .unwrap();
    }

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

    #[test]
    fn ipv6_addresses_count_by_network_and_ipv4_by_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_network(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), 64),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_network(ip("2001:db8:1:2:aaaa::1"), 48),
            ip("2001:db8:1::")
        );
        assert_eq!(client_network(ip("2001:db8::7"), 128), ip("2001:db8::7"));
        assert_eq!(client_network(ip("ffff::1"), 1), ip("8000::"));
        assert_eq!(client_network(ip("2001:db8::1"), 60), ip("2001:db8::"));
        assert_eq!(
            client_network(ip("2001:db8:0:1f::1"), 60),
            ip("2001:db8:0:10::")
        );
        // IPv4, and IPv4-mapped IPv6, stay whole addresses.
        assert_eq!(client_network(ip("192.0.2.77"), 64), ip("192.0.2.77"));
        assert_eq!(
            client_network(ip("::ffff:192.0.2.77"), 64),
            ip("192.0.2.77")
        );
        assert_eq!(ip_key(Some(ip("::ffff:192.0.2.77"))), ip("192.0.2.77"));
    }

    #[tokio::test]
    async fn a_whole_ipv6_64_shares_one_allowance() {
        let limits = RateLimits::new(LimitSettings::default(), None);
        let mut refused = 0;
        for i in 0..100u128 {
            let ip = IpAddr::from(Ipv6Addr::from(
                0x2001_0db8_0001_0002_u128 << 64 | (i * 7919),
            ));
            if limits.sign_in_ip.check(&ip).await.is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 90, "ten a minute for the whole /64");
        // The next /64 is another client.
        let next = IpAddr::from(Ipv6Addr::from(0x2001_0db8_0001_0003_u128 << 64 | 1));
        limits.sign_in_ip.check(&next).await.unwrap();
    }

    #[tokio::test]
    async fn password_hashes_over_the_bound_are_refused_quickly() {
        let slots = HashSlots::new(2, Duration::from_millis(100));
        let first = slots.acquire().await.unwrap();
        let _second = slots.acquire().await.unwrap();
        let started = std::time::Instant::now();
        let refused = slots.acquire().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(refused.retry_after >= Duration::from_secs(1));
        // Many at once: all refused within the wait, none queued on.
        let slots = Arc::new(slots);
        let started = std::time::Instant::now();
        let mut tries = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let slots = slots.clone();
            tries.spawn(async move { slots.acquire().await.map(drop) });
        }
        while let Some(result) = tries.join_next().await {
            assert!(result.unwrap().is_err());
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        // A slot freed goes to whoever waits for it.
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move { slots.acquire().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
        waiter.await.unwrap().unwrap();
        assert_eq!(
            HashSlots::new(0, Duration::ZERO).slots.available_permits(),
            1
        );
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
