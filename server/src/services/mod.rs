//! The use cases, one service each, with their own error enums. They speak
//! the domain's types and reach storage only through its traits; they know
//! nothing of HTTP, pages or which back-end runs.

pub(crate) mod accounts;
/// Public: the admin console and API act through it.
pub mod admin;
pub(crate) mod audit;
/// The admin console's CSRF tokens and secrets shown once.
pub(crate) mod console;
/// Public: the tests and the admin console make invites with its kinds.
pub mod invites;
pub(crate) mod limits;
pub(crate) mod logins;
pub(crate) mod oidc;
pub(crate) mod passkeys;

use std::{sync::Arc, time::Duration};

use crate::{
    domain::{
        account::Account, attempt::Ttls, caller::Caller, passkey::ApprovalPolicy, time::now_millis,
    },
    storage::{StoreError, Stores},
};
use accounts::{AccountError, AccountService};
use audit::AuditLog;
use limits::{LimitSettings, RateLimits};
use logins::LoginService;
use oidc::{backchannel::BackChannel, OidcService};
use passkeys::{PasskeyError, PasskeyService, SettingsStore};

/// Why an operator's account command failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountAdminError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every service of a running server, over one set of stores.
#[derive(Clone)]
pub struct Services {
    pub logins: LoginService,
    pub accounts: AccountService,
    pub audit: AuditLog,
    pub oidc: OidcService,
    pub passkeys: PasskeyService,
    /// What the admin status reads of the stores.
    pub(crate) admin: admin::AdminParts,
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
        let admin = admin::AdminParts::of(&stores);
        let audit = AuditLog::new(stores.audit.clone());
        let limits = RateLimits::new(limits, stores.limiter.clone());
        let backchannel = BackChannel::new(stores.provider.clone(), audit.clone(), issuer);
        let accounts = AccountService::new(
            stores.accounts,
            stores.sessions,
            stores.audit,
            audit.clone(),
            limits.clone(),
            SettingsStore::new(stores.provider.clone()),
            Arc::new(backchannel.clone()),
        );
        let passkeys = PasskeyService::new(
            stores.provider.clone(),
            accounts.clone(),
            limits.clone(),
            issuer,
            approvals,
            audit.clone(),
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
            backchannel,
        );
        Self {
            logins,
            accounts,
            audit,
            oidc,
            passkeys,
            admin,
        }
    }

    /// Who may make their own account (`--registration`): only the
    /// passkeys service serves sign-ups, so only it is told.
    pub fn with_registration(mut self, registration: invites::Registration) -> Self {
        self.passkeys.set_registration(registration);
        self
    }

    /// Removes the account named `username` and everything that hangs off
    /// it (sessions, passkeys, settings, consents, grants and so every
    /// code and token) in one transaction; `qrlogin user remove`.
    pub async fn remove_account(
        &self,
        username: &str,
        caller: &Caller,
    ) -> Result<Account, AccountAdminError> {
        let account = self.accounts.account_named(username).await?;
        let mut records = self.passkeys.account_records(account.id).await?;
        records.extend(OidcService::account_records(account.id));
        self.accounts
            .remove_account(&account, &records, caller)
            .await?;
        Ok(account)
    }

    /// Lets the person behind `username` back in (`qrlogin user reset`):
    /// a new password, every session ended, and password sign-in on again.
    /// The passkeys stay (the operator may remove them on the person's
    /// behalf once signed in). Returns the account and its new password.
    pub async fn reset_account(
        &self,
        username: &str,
        caller: &Caller,
    ) -> Result<(Account, String), AccountAdminError> {
        let account = self.accounts.account_named(username).await?;
        // The new password first, then password sign-in on: never is the
        // old password accepted again.
        let password = self.accounts.reset_password(&account, caller).await?;
        self.passkeys.turn_password_back_on(account.id).await?;
        Ok((account, password))
    }

    /// Makes the account named `username` an administrator, or not
    /// (`qrlogin user admin NAME on|off`); returns the account as it was.
    pub async fn set_admin(
        &self,
        username: &str,
        admin: bool,
        caller: &Caller,
    ) -> Result<Account, AccountAdminError> {
        let account = self.accounts.account_named(username).await?;
        self.accounts.set_admin(&account, admin, caller).await?;
        Ok(account)
    }

    /// Disables the account named `username` (`qrlogin user disable`):
    /// every session ends and every app's grant is revoked, in one
    /// transaction, at once on every instance; signing in (password or
    /// passkey), approving and tokens are refused until it is enabled. The
    /// account keeps its id, subject, passkeys, settings and consents.
    pub async fn disable_account(
        &self,
        username: &str,
        caller: &Caller,
    ) -> Result<Account, AccountAdminError> {
        let account = self.accounts.account_named(username).await?;
        let grants = [OidcService::account_grants(account.id)];
        self.accounts.disable(&account, &grants, caller).await?;
        Ok(account)
    }

    /// Enables the account named `username` again (`qrlogin user
    /// enable`): it can sign in; what disabling ended stays ended.
    pub async fn enable_account(
        &self,
        username: &str,
        caller: &Caller,
    ) -> Result<Account, AccountAdminError> {
        let account = self.accounts.account_named(username).await?;
        self.accounts.enable(&account, caller).await?;
        Ok(account)
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
