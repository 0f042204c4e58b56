//! The use cases, one service each, with their own error enums. They speak
//! the domain's types and reach storage only through its traits; they know
//! nothing of HTTP, pages or which back-end runs.

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod limits;
pub(crate) mod logins;

use std::time::Duration;

use crate::{
    domain::{attempt::Ttls, time::now_millis},
    storage::Stores,
};
use accounts::AccountService;
use audit::AuditLog;
use limits::{LimitSettings, RateLimits};
use logins::LoginService;

/// Every service of a running server, over one set of stores.
#[derive(Clone)]
pub struct Services {
    pub logins: LoginService,
    pub accounts: AccountService,
    pub audit: AuditLog,
}

impl Services {
    pub fn new(stores: Stores, ttls: Ttls, limits: LimitSettings) -> Self {
        let audit = AuditLog::new(stores.audit.clone());
        let limits = RateLimits::new(limits, stores.limiter.clone());
        let accounts = AccountService::new(
            stores.accounts,
            stores.sessions,
            stores.audit,
            audit.clone(),
            limits.clone(),
        );
        let logins = LoginService::new(
            stores.attempts,
            stores.notifier,
            accounts.clone(),
            audit.clone(),
            limits,
            ttls,
        );
        Self {
            logins,
            accounts,
            audit,
        }
    }

    /// Runs forever: every `every`, the logins' purge.
    pub async fn purge_forever(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            self.logins.purge(now_millis()).await;
        }
    }
}
