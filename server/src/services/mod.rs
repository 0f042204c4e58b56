//! The use cases, one service each, with their own error enums. They speak
//! the domain's types and reach storage only through its traits; they know
//! nothing of HTTP, pages or which back-end runs.

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod limits;
pub(crate) mod logins;
pub(crate) mod oidc;
pub(crate) mod passkeys;

use std::time::Duration;

use crate::{
    domain::{attempt::Ttls, passkey::ApprovalPolicy, time::now_millis},
    storage::Stores,
};
use accounts::AccountService;
use audit::AuditLog;
use limits::{LimitSettings, RateLimits};
use logins::LoginService;
use oidc::OidcService;
use passkeys::{PasskeyService, SettingsStore};

/// Every service of a running server, over one set of stores.
#[derive(Clone)]
pub struct Services {
    pub logins: LoginService,
    pub accounts: AccountService,
    pub audit: AuditLog,
    pub oidc: OidcService,
    pub passkeys: PasskeyService,
}

impl Services {
    /// `issuer`: the public URL, the OpenID Connect provider's identifier
    /// and the passkeys' relying party.
    pub fn new(
        stores: Stores,
        ttls: Ttls,
        limits: LimitSettings,
        issuer: &str,
        approvals: ApprovalPolicy,
    ) -> Self {
        let audit = AuditLog::new(stores.audit.clone());
        let limits = RateLimits::new(limits, stores.limiter.clone());
        let accounts = AccountService::new(
            stores.accounts,
            stores.sessions,
            stores.audit,
            audit.clone(),
            limits.clone(),
            SettingsStore::new(stores.provider.clone()),
        );
        let passkeys = PasskeyService::new(
            stores.provider.clone(),
            accounts.clone(),
            limits.clone(),
            issuer,
            approvals,
        );
        let logins = LoginService::new(
            stores.attempts,
            stores.notifier,
            accounts.clone(),
            passkeys.clone(),
            audit.clone(),
            limits.clone(),
            ttls,
        );
        let oidc = OidcService::new(
            stores.provider,
            logins.clone(),
            accounts.clone(),
            passkeys.clone(),
            limits,
            audit.clone(),
            issuer,
        );
        Self {
            logins,
            accounts,
            audit,
            oidc,
            passkeys,
        }
    }

    /// Runs forever: every `every`, the logins' purge.
    pub async fn purge_forever(self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            self.logins.purge(now_millis()).await;
            self.oidc.purge(now_millis()).await;
        }
    }
}
