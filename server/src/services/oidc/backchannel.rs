//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0): when a
//! person's session ends (signed out, revoked on `/m` or by an
//! administrator), an app is revoked, or an account is reset, disabled or
//! removed, every app that registered a `backchannel_logout_uri` and was
//! signed in through it gets a signed logout token by POST.
//!
//! Deliveries are records in the provider store, written in the step that
//! ends the session and delivered by a background worker on whichever
//! instance claims them first (compare-and-set on the record): a slow or
//! dead app never slows a sign-in or a sign-out, a restart loses nothing,
//! and `qrlogin user disable`, run beside the server, is delivered by the
//! server. A failed try is retried with backoff, [`MAX_TRIES`] times in
//! all; every delivery and every failed try is in the audit trail.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{keys::SigningKeys, kinds};
use crate::{
    domain::{
        account::Account,
        audit::AuditEvent,
        caller::Caller,
        oidc::{
            lifetimes, random_id, session_sid, Client, Grant, LogoutNotice, LogoutTokenClaims,
            BACKCHANNEL_LOGOUT_EVENT,
        },
        time::{now_millis, UnixMillis},
    },
    services::{accounts::SessionEndings, audit::AuditLog},
    storage::{parse_record, ProviderRecord, ProviderStore, StoreError},
};

/// Tries per delivery: the first at once, then after 1, 2, 4 … 64 s.
pub const MAX_TRIES: u32 = 8;
/// How long an app may take to answer one try.
const TRY_TIMEOUT: Duration = Duration::from_secs(5);
/// A claimed delivery is another instance's to retry only after this (the
/// claiming instance died mid-try).
const LEASE_MS: u64 = 30_000;
/// A delivery not done by then is dropped (it has long failed for good).
const KEEP_MS: u64 = 24 * 3_600_000;
/// How often the worker looks for deliveries it was not woken for (those
/// another process queued, retries coming due).
const LOOK_EVERY: Duration = Duration::from_secs(2);

/// One logout token to deliver, as stored (by its `jti`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Delivery {
    notice: LogoutNotice,
    tries: u32,
    /// When the next try is due (or, while one runs, when its lease ends).
    due_at: UnixMillis,
}

/// The queue and its worker; cheap to clone.
#[derive(Clone)]
pub struct BackChannel(Arc<Inner>);

struct Inner {
    store: Arc<dyn ProviderStore>,
    keys: SigningKeys,
    audit: AuditLog,
    issuer: Arc<str>,
    http: reqwest::Client,
    /// Wakes the worker when this process queued a delivery.
    wake: Arc<Notify>,
}

/// Who acts in the audit trail when the worker tells an app.
fn worker() -> Caller {
    Caller::new(None, "qrlogin").acting_as("back-channel logout")
}

impl BackChannel {
    pub fn new(store: Arc<dyn ProviderStore>, audit: AuditLog, issuer: &str) -> Self {
        // No redirects: the registered URI is where the token goes, and
        // nowhere an answer points to.
        let http = reqwest::Client::builder()
            .timeout(TRY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("qrlogin back-channel logout")
            .build()
            .unwrap_or_default();
        Self(Arc::new(Inner {
            keys: SigningKeys::new(store.clone()),
            store,
            audit,
            issuer: issuer.trim_end_matches('/').into(),
            http,
            wake: Arc::default(),
        }))
    }

    pub(crate) fn keys(&self) -> &SigningKeys {
        &self.0.keys
    }

    /// The worker: delivers what is due, woken by this process's queueing
    /// or every [`LOOK_EVERY`]; ends once every handle to the queue is
    /// dropped (a server shutting down, a test's app gone).
    pub fn spawn_worker(&self) {
        let queue: Weak<Inner> = Arc::downgrade(&self.0);
        let wake = self.0.wake.clone();
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(LOOK_EVERY, wake.notified()).await;
                let Some(inner) = queue.upgrade() else {
                    break;
                };
                BackChannel(inner).deliver_due().await;
            }
        });
    }

    /// The apps to tell about `account`: those holding a grant made
    /// through session `session_id`, or (`None`) every app it holds a
    /// grant or consent for; only apps that registered a back-channel URI.
    async fn notices(
        &self,
        account: &Account,
        session_id: Option<&str>,
    ) -> Result<Vec<LogoutNotice>, StoreError> {
        let now = now_millis();
        let prefix = format!("{}:", account.id);
        let sid = session_id.map(session_sid);
        let mut clients: Vec<String> = Vec::new();
        for (key, record) in self.0.store.list(kinds::GRANT, &prefix, now).await? {
            let through_session = match (&sid, parse_record::<Grant>(&record)) {
                (None, _) => true,
                (Some(sid), Some(grant)) => grant.sid.as_ref() == Some(sid),
                (Some(_), None) => false,
            };
            if through_session {
                clients.push(Grant::key_owner(&key).1.to_owned());
            }
        }
        if sid.is_none() {
            for (key, _) in self.0.store.list(kinds::CONSENT, &prefix, now).await? {
                clients.push(Grant::key_owner(&key).1.to_owned());
            }
        }
        clients.sort();
        clients.dedup();
        let mut notices = Vec::new();
        for client_id in clients {
            if self.logout_uri(&client_id).await?.is_some() {
                notices.push(LogoutNotice {
                    client_id,
                    account_id: account.id,
                    subject: account.subject.clone(),
                    sid: sid.clone(),
                });
            }
        }
        Ok(notices)
    }

    /// The app `client_id` is to be told that the account's sessions with
    /// it ended (its grant revoked); nothing when it registered no URI.
    pub(crate) async fn notice_for_app(
        &self,
        account: &Account,
        client_id: &str,
    ) -> Result<Vec<LogoutNotice>, StoreError> {
        Ok(match self.logout_uri(client_id).await? {
            Some(_) => vec![LogoutNotice {
                client_id: client_id.to_owned(),
                account_id: account.id,
                subject: account.subject.clone(),
                sid: None,
            }],
            None => Vec::new(),
        })
    }

    async fn logout_uri(&self, client_id: &str) -> Result<Option<String>, StoreError> {
        let record = self
            .0
            .store
            .get(kinds::CLIENT, client_id, now_millis())
            .await?;
        Ok(record
            .as_ref()
            .and_then(parse_record::<Client>)
            .and_then(|c| c.backchannel_logout_uri))
    }

    /// Queues the deliveries and wakes the worker.
    pub(crate) async fn queue(&self, notices: Vec<LogoutNotice>) -> Result<(), StoreError> {
        if notices.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        for notice in notices {
            let delivery = Delivery {
                notice,
                tries: 0,
                due_at: now,
            };
            let value = serde_json::to_string(&delivery)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            self.0
                .store
                .insert(kinds::LOGOUT, &random_id(), &value, now + KEEP_MS, now)
                .await?;
        }
        self.0.wake.notify_one();
        Ok(())
    }

    /// Tries every delivery that is due, at once (one app's slowness is
    /// not another's).
    pub async fn deliver_due(&self) {
        let now = now_millis();
        let due = match self.0.store.list(kinds::LOGOUT, "", now).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(%err, "cannot read the back-channel logout queue");
                return;
            }
        };
        let tries = due
            .into_iter()
            .filter_map(|(jti, record)| {
                let delivery = parse_record::<Delivery>(&record)?;
                (delivery.due_at <= now).then_some((jti, record, delivery))
            })
            .map(|(jti, record, delivery)| self.try_once(jti, record, delivery));
        futures_util::future::join_all(tries).await;
    }

    /// Claims the delivery (no other instance tries it meanwhile), tries
    /// it, and removes it or sets its next try.
    async fn try_once(&self, jti: String, record: ProviderRecord, delivery: Delivery) {
        let store = &self.0.store;
        let now = now_millis();
        let tries = delivery.tries + 1;
        let claimed = Delivery {
            tries,
            due_at: now + LEASE_MS,
            ..delivery
        };
        let Ok(value) = serde_json::to_string(&claimed) else {
            return;
        };
        match store
            .replace(
                kinds::LOGOUT,
                &jti,
                record.version,
                &value,
                record.expires_at,
                now,
            )
            .await
        {
            Ok(true) => {}
            // Another instance's now, or the store is away: next round.
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(%err, "cannot claim a back-channel logout");
                return;
            }
        }
        let notice = &claimed.notice;
        // An app removed (or no longer told) since: nothing to deliver.
        let uri = match self.logout_uri(&notice.client_id).await {
            Ok(Some(uri)) => uri,
            Ok(None) => {
                tracing::info!(client = %notice.client_id, "back-channel logout dropped: the app is gone");
                if let Err(err) = store.remove_key(kinds::LOGOUT, &jti).await {
                    tracing::warn!(%err, "cannot drop a back-channel logout");
                }
                return;
            }
            // The lease runs out and the delivery is tried again then.
            Err(err) => {
                tracing::warn!(%err, "cannot read the app of a back-channel logout");
                return;
            }
        };
        let result = self.post(&uri, &jti, notice).await;
        let event = match &result {
            Ok(()) => AuditEvent::AppLogoutSent,
            Err(_) => AuditEvent::AppLogoutFailed,
        };
        self.0
            .audit
            .record_app(event, Some(notice.account_id), &notice.client_id, &worker());
        let done = match result {
            Ok(()) => {
                tracing::info!(client = %notice.client_id, "back-channel logout delivered");
                true
            }
            Err(reason) if tries >= MAX_TRIES => {
                tracing::warn!(client = %notice.client_id, %reason, tries, "back-channel logout given up");
                true
            }
            Err(reason) => {
                tracing::info!(client = %notice.client_id, %reason, tries, "back-channel logout failed; will retry");
                false
            }
        };
        let outcome = if done {
            store.remove_key(kinds::LOGOUT, &jti).await.map(drop)
        } else {
            let retry = Delivery {
                due_at: now_millis() + retry_after(tries),
                ..claimed.clone()
            };
            self.reschedule(&jti, &retry).await
        };
        if let Err(err) = outcome {
            // The lease runs out and the delivery is tried again then.
            tracing::warn!(%err, "cannot update a back-channel logout");
        }
    }

    /// Sets the delivery's next try (it is still claimed: nobody else
    /// changed it meanwhile).
    async fn reschedule(&self, jti: &str, retry: &Delivery) -> Result<(), StoreError> {
        let store = &self.0.store;
        let now = now_millis();
        let Some(current) = store.get(kinds::LOGOUT, jti, now).await? else {
            return Ok(());
        };
        let value =
            serde_json::to_string(retry).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        store
            .replace(
                kinds::LOGOUT,
                jti,
                current.version,
                &value,
                current.expires_at,
                now,
            )
            .await
            .map(drop)
    }

    /// One POST to `uri` of a freshly signed logout token; `Err` says why
    /// it failed.
    async fn post(&self, uri: &str, jti: &str, notice: &LogoutNotice) -> Result<(), String> {
        let now = now_millis();
        let claims = LogoutTokenClaims {
            iss: self.0.issuer.to_string(),
            aud: notice.client_id.clone(),
            iat: now / 1000,
            exp: (now + lifetimes::LOGOUT_TOKEN_MS) / 1000,
            jti: jti.to_owned(),
            sub: notice.subject.clone(),
            sid: notice.sid.clone(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        };
        let token = self
            .0
            .keys
            .sign_typed(&claims, "logout+jwt")
            .await
            .map_err(|e| e.to_string())?;
        let response = self
            .0
            .http
            .post(uri)
            .form(&[("logout_token", token)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        // §2.8: 200 (or 204) is success; anything else is a failure.
        match response.status().as_u16() {
            200 | 204 => Ok(()),
            status => Err(format!("the app answered {status}")),
        }
    }
}

/// The wait before try `tries + 1`: 1, 2, 4 … seconds.
fn retry_after(tries: u32) -> u64 {
    1000 << tries.saturating_sub(1).min(10)
}

#[async_trait::async_trait]
impl SessionEndings for BackChannel {
    async fn affected(&self, account: &Account, session_id: Option<&str>) -> Vec<LogoutNotice> {
        match self.notices(account, session_id).await {
            Ok(notices) => notices,
            Err(err) => {
                // The sign-out goes on; the apps' own sessions then end
                // with their tokens.
                tracing::warn!(%err, account = %account.username, "cannot tell which apps to log out");
                Vec::new()
            }
        }
    }

    async fn notify(&self, notices: Vec<LogoutNotice>) {
        if let Err(err) = self.queue(notices).await {
            tracing::warn!(%err, "cannot queue back-channel logouts");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_one_second() {
        let waits: Vec<u64> = (1..MAX_TRIES).map(retry_after).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 16000, 32000, 64000]);
    }
}
