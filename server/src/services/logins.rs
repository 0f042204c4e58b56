//! Login attempts: the desktop creates one (bound to its browser by a
//! secret), waits, and redeems it; the signed-in phone scans, approves or
//! denies it. Every change goes through the domain's state machine in the
//! attempt store, is audited, and wakes the desktops waiting on it.

use std::{sync::Arc, time::Duration};

use super::{
    accounts::{AccountService, CurrentSession},
    audit::AuditLog,
    limits::{self, ip_key, Check, LimitError, RateLimited, RateLimits},
    passkeys::{PasskeyError, PasskeyService},
};
use crate::{
    domain::{
        account::{Account, SignInMethod},
        attempt::{
            Attempt, LoginId, LoginState, Requester, Scanner, Transition, TransitionError, Ttls,
        },
        audit::AuditEvent,
        caller::{same_network, Caller, ShownRequester},
        passkey::ShownApproval,
        secret::{Secret, SecretHash},
        time::{now_millis, UnixMillis},
    },
    storage::{Applied, AttemptStore, ChangeNotifier, StoreError},
};

/// Longest long poll a desktop may ask for, in seconds.
pub const MAX_WAIT_S: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown id, or a desktop without the creating browser's bind secret:
    /// the two must be indistinguishable.
    #[error("no such sign-in request for this browser")]
    NotFound,
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("wait must be between 0 and {MAX_WAIT_S} seconds")]
    WaitTooLong,
    /// A phone call without a live session.
    #[error("not signed in")]
    NotSignedIn,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The approval needs a passkey that confirms what the phone showed.
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the phone showed of an attempt when a number was picked: what an
/// approval with a passkey signs.
struct Shown {
    subject: String,
    number: u8,
    requester: ShownRequester,
    client: Option<String>,
}

impl Shown {
    fn of(attempt: &Attempt, number: u8) -> Self {
        let requester = &attempt.requester;
        Self {
            subject: attempt.id.to_string(),
            number,
            requester: ShownRequester::of(&requester.user_agent, requester.ip),
            client: requester.client.clone(),
        }
    }

    fn approval(&self) -> ShownApproval<'_> {
        ShownApproval {
            subject: &self.subject,
            number: Some(self.number),
            browser: &self.requester.browser,
            os: &self.requester.os,
            ip: &self.requester.ip,
            client: self.client.as_deref(),
        }
    }
}

/// Counts an attempt's step in `qrlogin_attempts_total`, by its audit event.
fn count_attempt(event: AuditEvent) {
    metrics::counter!("qrlogin_attempts_total", "outcome" => event.as_str()).increment(1);
}

/// Counts a desktop in `qrlogin_desktops_waiting` while it lives (a long
/// poll whose client leaves is dropped, and so uncounted, too).
struct WaitingDesktop;

/// The desktops waiting on this instance now (the admin status shows it
/// without `/metrics`).
static DESKTOPS_WAITING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many desktops wait on this instance now.
pub fn desktops_waiting() -> u64 {
    DESKTOPS_WAITING.load(std::sync::atomic::Ordering::Relaxed)
}

impl WaitingDesktop {
    fn new() -> Self {
        metrics::gauge!("qrlogin_desktops_waiting").increment(1.0);
        DESKTOPS_WAITING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self
    }
}

impl Drop for WaitingDesktop {
    fn drop(&mut self) {
        metrics::gauge!("qrlogin_desktops_waiting").decrement(1.0);
        DESKTOPS_WAITING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl From<LimitError> for LoginError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Store(store) => Self::Store(store),
        }
    }
}

/// What a phone call is about to do, for the limits [`LoginService::phone`]
/// counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneStep {
    Scan,
    /// Approve or deny.
    Decide,
}

/// A new attempt and the secret that binds it to its browser.
pub struct Created {
    pub attempt: Attempt,
    pub bind_secret: Secret,
}

#[derive(Clone)]
pub struct LoginService {
    attempts: Arc<dyn AttemptStore>,
    notifier: Arc<dyn ChangeNotifier>,
    accounts: AccountService,
    passkeys: PasskeyService,
    audit: AuditLog,
    limits: Arc<RateLimits>,
    ttls: Ttls,
}

impl LoginService {
    pub fn new(
        attempts: Arc<dyn AttemptStore>,
        notifier: Arc<dyn ChangeNotifier>,
        accounts: AccountService,
        passkeys: PasskeyService,
        audit: AuditLog,
        limits: Arc<RateLimits>,
        ttls: Ttls,
    ) -> Self {
        Self {
            attempts,
            notifier,
            accounts,
            passkeys,
            audit,
            limits,
            ttls,
        }
    }

    pub fn ttls(&self) -> Ttls {
        self.ttls
    }

    /// A new attempt for `caller`'s browser; id and secret come from the
    /// OS CSPRNG, never from the request.
    pub async fn create(&self, caller: &Caller) -> Result<Created, LoginError> {
        self.create_for(caller, None, None).await
    }

    /// [`create`](Self::create), for a sign-in to the OpenID Connect
    /// client named `client` (the phone shows its name); with
    /// `expected_account`, only that account's phone may scan it.
    pub async fn create_for(
        &self,
        caller: &Caller,
        client: Option<String>,
        expected_account: Option<i64>,
    ) -> Result<Created, LoginError> {
        self.limits.create.check(&ip_key(caller.ip)).await?;
        let bind_secret = Secret::new_random();
        let requester = Requester {
            ip: caller.ip,
            user_agent: caller.user_agent.clone(),
            client,
            expected_account,
        };
        let attempt = Attempt::new(
            LoginId::new_random(),
            bind_secret.hash(),
            requester,
            now_millis(),
            &self.ttls,
        );
        self.attempts.insert(attempt.clone()).await?;
        tracing::debug!(login_id = %attempt.id, "login attempt created");
        count_attempt(AuditEvent::LoginCreated);
        self.audit
            .record(AuditEvent::LoginCreated, Some(attempt.id), None, caller);
        Ok(Created {
            attempt,
            bind_secret,
        })
    }

    /// The attempt for its bound browser, which presents `secrets` (a
    /// browser may hold several bind cookies; any one may be the right one).
    /// Unknown ids and wrong or missing secrets fail alike, after the same
    /// work.
    async fn load_bound(&self, id: LoginId, secrets: &[Secret]) -> Result<Attempt, LoginError> {
        let attempt = self.attempts.get(id, now_millis()).await?;
        Self::bound(attempt, secrets)
    }

    /// The attempt, if `secrets` hold its bind secret.
    fn bound(attempt: Option<Attempt>, secrets: &[Secret]) -> Result<Attempt, LoginError> {
        let stored = attempt
            .as_ref()
            .map(|a| a.bind_hash)
            .unwrap_or(SecretHash([0; 32]));
        let mut bound = secrets.is_empty() && stored.matches(None);
        for secret in secrets {
            bound |= stored.matches(Some(secret));
        }
        match attempt {
            Some(attempt) if bound => Ok(attempt),
            _ => Err(LoginError::NotFound),
        }
    }

    /// The attempt as its browser may see it; with `since` and a `wait`,
    /// once its version passes `since` (or its time or the wait runs out).
    pub async fn status(
        &self,
        id: LoginId,
        secrets: &[Secret],
        caller: &Caller,
        since: Option<u64>,
        wait_s: u64,
    ) -> Result<Attempt, LoginError> {
        self.limits.poll.check(&ip_key(caller.ip)).await?;
        if wait_s > MAX_WAIT_S {
            return Err(LoginError::WaitTooLong);
        }
        let waits = since.is_some() && wait_s > 0;
        // A read that will not wait answers what the store holds now (this
        // instance's copy may be a moment behind a change made on another);
        // a long poll starts from the copy, and waits for the change it
        // lacks, which the notice brings with it.
        let attempt = if waits {
            self.load_bound(id, secrets).await?
        } else {
            Self::bound(self.attempts.get_fresh(id, now_millis()).await?, secrets)?
        };
        match since {
            Some(since)
                if wait_s > 0 && attempt.version <= since && !attempt.state.is_terminal() =>
            {
                self.wait_for_change(attempt, since, Duration::from_secs(wait_s))
                    .await
            }
            _ => Ok(attempt),
        }
    }

    /// Waits on the notifier (no polling, no task) until the attempt's
    /// version passes `since`, its time runs out, or `wait` ends.
    async fn wait_for_change(
        &self,
        attempt: Attempt,
        since: u64,
        wait: Duration,
    ) -> Result<Attempt, LoginError> {
        let mut versions = self.notifier.subscribe(attempt.id);
        let _waiting = WaitingDesktop::new();
        // Read again now that we listen: a change made between the first
        // read and the subscription is not missed.
        let now = now_millis();
        let attempt = self.attempts.get(attempt.id, now).await?.unwrap_or(attempt);
        if attempt.version > since || attempt.state.is_terminal() {
            return Ok(attempt);
        }
        let until_expiry = Duration::from_millis(attempt.expires_at.saturating_sub(now));
        let changed = versions.wait_for(|version| *version > since);
        let _ = tokio::time::timeout(wait.min(until_expiry), changed).await;
        // Reading again also expires the attempt if its time ran out.
        Ok(self
            .attempts
            .get(attempt.id, now_millis())
            .await?
            .unwrap_or(attempt))
    }

    /// Applies a transition to an attempt that exists, audits what changed
    /// and wakes whoever waits on it.
    async fn transition(
        &self,
        id: LoginId,
        transition: &Transition,
        account_id: Option<i64>,
        caller: &Caller,
    ) -> Result<Attempt, LoginError> {
        let Applied {
            attempt,
            outcome,
            changed,
            announced,
        } = self
            .attempts
            .apply(id, transition, now_millis(), &self.ttls)
            .await?
            .ok_or(LoginError::NotFound)?;
        if changed {
            if let Some(event) = AuditEvent::of_attempt_entering(attempt.state) {
                count_attempt(event);
                self.audit.record(event, Some(id), account_id, caller);
            }
            if !announced {
                if let Err(err) = self.notifier.publish(id, attempt.version).await {
                    // The change is stored; waiters see it when their wait ends.
                    tracing::warn!(login_id = %id, error = %err, "cannot notify waiting desktops");
                }
            }
        }
        outcome?;
        Ok(attempt)
    }

    /// The bound desktop collects its session. Atomic: of racing redeems
    /// exactly one succeeds. The account is the approving phone's, never
    /// anything from the request.
    ///
    /// The session is stored before the attempt is marked redeemed: a store
    /// that fails in between leaves the approval in place for a retry
    /// (nothing approved is lost); a redeem that loses a race removes the
    /// session it stored, whose token nobody ever saw.
    pub async fn redeem(
        &self,
        id: LoginId,
        secrets: &[Secret],
        caller: &Caller,
    ) -> Result<(Secret, Account), LoginError> {
        self.limits.poll.check(&ip_key(caller.ip)).await?;
        let mut preview = self.load_bound(id, secrets).await?;
        // What the state machine says of this redeem, on what was read. A
        // refusal is checked on what the store holds now: the approval may
        // be a moment old on another instance, and this one's copy behind.
        if preview
            .clone()
            .apply(&Transition::Redeem, now_millis(), &self.ttls)
            .is_err()
        {
            let fresh = self.attempts.get_fresh(id, now_millis()).await?;
            preview = Self::bound(fresh, secrets)?;
        }
        preview.apply(&Transition::Redeem, now_millis(), &self.ttls)?;
        let gone = LoginError::Transition(TransitionError::Finished(LoginState::Redeemed));
        let Some(approver) = preview.scanner else {
            return Err(gone);
        };
        let Some(account) = self.accounts.account_by_id(approver.account_id).await? else {
            return Err(gone);
        };
        let (token, session) = self
            .accounts
            .store_session(&account, SignInMethod::Qr, caller)
            .await?;
        let redeemed = self.transition(id, &Transition::Redeem, None, caller).await;
        match redeemed {
            Ok(attempt) if attempt.scanner.as_ref() == Some(&approver) => {
                self.accounts.session_started(&account, &session, caller);
                tracing::debug!(login_id = %id, account = %account.username, "login redeemed");
                Ok((token, account))
            }
            Ok(_) => {
                self.accounts.discard_session(&session).await;
                Err(gone)
            }
            Err(err) => {
                self.accounts.discard_session(&session).await;
                Err(err)
            }
        }
    }

    /// The account that redeemed attempt `id`, if it was redeemed (and is
    /// still remembered): how the OpenID Connect provider learns that the
    /// phone approved the sign-in it asked for.
    pub async fn redeemed_by(&self, id: LoginId) -> Result<Option<i64>, StoreError> {
        // Not from a copy that may lag the redeem on another instance.
        let attempt = self.attempts.get_fresh(id, now_millis()).await?;
        Ok(attempt
            .filter(|a| a.state == LoginState::Redeemed)
            .and_then(|a| a.scanner)
            .map(|s| s.account_id))
    }

    /// The desktop gave up (page left); harmless when already cancelled.
    pub async fn cancel(
        &self,
        id: LoginId,
        secrets: &[Secret],
        caller: &Caller,
    ) -> Result<(), LoginError> {
        self.limits.poll.check(&ip_key(caller.ip)).await?;
        let attempt = self.load_bound(id, secrets).await?;
        if attempt.state != LoginState::Cancelled {
            self.transition(id, &Transition::Cancel, None, caller)
                .await?;
        }
        Ok(())
    }

    /// The limits of a scan by `account_id` from `caller`.
    fn scan_limits(&self, caller: &Caller, account_id: i64) -> Vec<Check> {
        vec![
            self.limits.scan_ip.of(&ip_key(caller.ip)),
            self.limits.scan_account.of(&account_id),
        ]
    }

    /// The limits of an approval or denial by `account_id` from `caller`.
    fn decide_limits(&self, caller: &Caller, account_id: i64) -> Vec<Check> {
        vec![
            self.limits.decide_ip.of(&ip_key(caller.ip)),
            self.limits.decide_account.of(&account_id),
        ]
    }

    /// The phone's session `token` names, with the limits of `step`
    /// counted (in the same Redis round trip as the session's freshness
    /// check, where this instance has the session cached).
    pub async fn phone(
        &self,
        token: Option<&Secret>,
        caller: &Caller,
        step: PhoneStep,
    ) -> Result<CurrentSession, LoginError> {
        let token = token.ok_or(LoginError::NotSignedIn)?;
        let limits = |account_id| match step {
            PhoneStep::Scan => self.scan_limits(caller, account_id),
            PhoneStep::Decide => self.decide_limits(caller, account_id),
        };
        self.accounts
            .current_limited(token, limits)
            .await?
            .ok_or(LoginError::NotSignedIn)
    }

    /// Scans for the signed-in phone account; repeating it is harmless.
    pub async fn scan(
        &self,
        id: LoginId,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<Attempt, LoginError> {
        limits::gate(self.scan_limits(caller, current.account.id)).await?;
        self.scan_counted(id, current, caller).await
    }

    /// [`Self::scan`] for a session [`Self::phone`] gave (which counted it).
    pub async fn scan_counted(
        &self,
        id: LoginId,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<Attempt, LoginError> {
        let account = &current.account;
        // Only what the desktop may see goes into the attempt (rule 5).
        let scan = Transition::scan(Scanner::of(account));
        let attempt = self.transition(id, &scan, Some(account.id), caller).await?;
        tracing::debug!(login_id = %id, account = %account.username, "login scanned");
        Ok(attempt)
    }

    /// Approves for the phone's own account, which must be the scanner's
    /// and must pick the number the desktop shows; with a passkey assertion
    /// for exactly this attempt, number and requester when one is needed.
    pub async fn approve(
        &self,
        id: LoginId,
        current: &CurrentSession,
        caller: &Caller,
        match_code: u8,
        assertion: Option<&str>,
    ) -> Result<Attempt, LoginError> {
        self.check_decide_limits(current, caller).await?;
        self.approve_counted(id, current, caller, match_code, assertion)
            .await
    }

    /// [`Self::approve`] for a session [`Self::phone`] gave (which counted it).
    pub async fn approve_counted(
        &self,
        id: LoginId,
        current: &CurrentSession,
        caller: &Caller,
        match_code: u8,
        assertion: Option<&str>,
    ) -> Result<Attempt, LoginError> {
        let account_id = current.account.id;
        // (Where passkeys are off nothing can need one: no extra read.)
        if self.passkeys.available() {
            let attempt = self.scanned_by(id, account_id).await?;
            // Pending too: a scan racing this approval must not skip the check.
            if matches!(attempt.state, LoginState::Pending | LoginState::Scanned) {
                let same = same_network(attempt.requester.ip, caller.ip);
                let shown = Shown::of(&attempt, match_code);
                self.passkeys
                    .authorize_approval(account_id, &shown.approval(), same, assertion)
                    .await?;
            }
        }
        let approve = Transition::Approve {
            account_id,
            match_code,
        };
        let result = self
            .transition(id, &approve, Some(account_id), caller)
            .await;
        tracing::debug!(login_id = %id, account = %current.account.username, ok = result.is_ok(), "login approval");
        result
    }

    /// The browser's passkey options for approving `id` with `match_code`
    /// (the challenge is derived from what the phone shows).
    pub async fn approval_options(
        &self,
        id: LoginId,
        current: &CurrentSession,
        match_code: u8,
    ) -> Result<webauthn_rs::prelude::RequestChallengeResponse, LoginError> {
        let attempt = self.scanned_by(id, current.account.id).await?;
        let shown = Shown::of(&attempt, match_code);
        Ok(self
            .passkeys
            .approval_options(current.account.id, &shown.approval())
            .await?)
    }

    /// Whether approving `attempt` from the phone `caller` needs a passkey.
    pub async fn approval_needs_passkey(
        &self,
        attempt: &Attempt,
        account_id: i64,
        caller: &Caller,
    ) -> Result<bool, StoreError> {
        let same = same_network(attempt.requester.ip, caller.ip);
        self.passkeys.approval_needs_passkey(account_id, same).await
    }

    /// The attempt, unless another account scanned it (then it is not
    /// this account's to approve).
    async fn scanned_by(&self, id: LoginId, account_id: i64) -> Result<Attempt, LoginError> {
        let attempt = self
            .attempts
            .get(id, now_millis())
            .await?
            .ok_or(LoginError::NotFound)?;
        match &attempt.scanner {
            Some(scanner) if scanner.account_id != account_id => {
                Err(TransitionError::ScannedByOther.into())
            }
            _ => Ok(attempt),
        }
    }

    pub async fn deny(
        &self,
        id: LoginId,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<Attempt, LoginError> {
        self.check_decide_limits(current, caller).await?;
        self.deny_counted(id, current, caller).await
    }

    /// [`Self::deny`] for a session [`Self::phone`] gave (which counted it).
    pub async fn deny_counted(
        &self,
        id: LoginId,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<Attempt, LoginError> {
        let account_id = current.account.id;
        let deny = Transition::Deny { account_id };
        let attempt = self.transition(id, &deny, Some(account_id), caller).await?;
        tracing::debug!(login_id = %id, account = %current.account.username, "login denied");
        Ok(attempt)
    }

    async fn check_decide_limits(
        &self,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<(), LimitError> {
        limits::gate(self.decide_limits(caller, current.account.id)).await
    }

    /// Drops attempts that ended long ago, auditing each expiry once, and
    /// what is kept for idle rate-limit keys and notifications.
    pub async fn purge(&self, now: UnixMillis) {
        self.limits.forget_idle();
        self.notifier.forget_idle();
        match self.attempts.purge(now).await {
            Ok(purged) => {
                for attempt in purged.iter().filter(|a| a.state == LoginState::Expired) {
                    count_attempt(AuditEvent::LoginExpired);
                    self.audit.record_expired(attempt);
                }
                if !purged.is_empty() {
                    tracing::debug!(purged = purged.len(), "purged finished login attempts");
                }
            }
            Err(err) => tracing::warn!(error = %err, "purging login attempts failed"),
        }
    }
}
