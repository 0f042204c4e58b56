//! The OpenID Connect provider's use cases: clients, the authorization
//! code flow with the phone as the sign-in ([`authorize`]), the token
//! endpoint's grants ([`tokens`]), the RFC 8628 device flow ([`device`]),
//! and the signing keys ([`keys`]). Every record lives in a
//! [`ProviderStore`]; the rules are in `domain::oidc`.

pub(crate) mod authorize;
pub(crate) mod backchannel;
pub(crate) mod device;
pub(crate) mod dpop;
pub(crate) mod keys;
pub(crate) mod sealing;
pub(crate) mod tokens;

use std::{sync::Arc, time::Duration};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{
    accounts::{AccountService, SessionEndings},
    audit::AuditLog,
    limits::{LimitError, RateLimited, RateLimits},
    logins::LoginService,
    passkeys::{PasskeyError, PasskeyService},
};
use crate::{
    domain::{
        audit::AuditEvent,
        caller::Caller,
        oidc::{plausible_id, Client, ClientError, Grant, LogoutUris},
        time::{now_millis, UnixMillis},
    },
    storage::{
        parse_record as parse, KeyMatch, ProviderRecord, ProviderStore, RecordSelector, StoreError,
    },
};
use backchannel::BackChannel;
use keys::{KeyError, SigningKeys, FOREVER};
use sealing::Sealer;
pub use tokens::ClientCredentials;

/// The record kinds, as the store names them.
mod kinds {
    pub const CLIENT: &str = "client";
    pub const CONSENT: &str = "consent";
    pub const GRANT: &str = "grant";
    pub const AUTHORIZATION: &str = "authorization";
    pub const CODE: &str = "code";
    pub const ACCESS_TOKEN: &str = "access_token";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    pub const DEVICE: &str = "device";
    pub const USER_CODE: &str = "user_code";
    /// A back-channel logout token waiting to be delivered.
    pub const LOGOUT: &str = "backchannel_logout";
    /// A DPoP proof's key and `jti`, seen (hashed).
    pub const DPOP_JTI: &str = "dpop_jti";
}

/// An OAuth error (RFC 6749 §5.2, RFC 8628 §3.5, RFC 6750 §3.1): the
/// transport sends `error` and `error_description` as the protocol says.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("client authentication failed")]
    InvalidClient,
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("grant type not supported")]
    UnsupportedGrantType,
    #[error("the scope must include openid")]
    InvalidScope,
    #[error("the person has not approved yet")]
    AuthorizationPending,
    #[error("polling too fast: wait longer between polls")]
    SlowDown,
    #[error("the person denied the request")]
    AccessDenied,
    #[error("the device code has expired")]
    ExpiredToken,
    /// A bearer token that is unknown, expired or revoked.
    #[error("the access token is invalid")]
    InvalidToken,
    /// A DPoP-bound token presented without the proof of its key, or a
    /// token presented as DPoP-bound that is not (RFC 9449 §7.1).
    #[error("{0}")]
    InvalidDpopToken(&'static str),
    /// A DPoP proof that does not hold (RFC 9449 §5, §7.1).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// The proof lacks a fresh server nonce: try again with this one
    /// (RFC 9449 §8).
    #[error("the DPoP proof must carry the server's nonce")]
    UseDpopNonce(String),
    /// A device user code that is unknown or gone (the phone's page).
    #[error("no such code: check the code the device shows")]
    UnknownUserCode,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// Approving a device needs a passkey that confirms what was shown.
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<LimitError> for OidcError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Store(store) => Self::Store(store),
        }
    }
}

impl From<KeyError> for OidcError {
    fn from(err: KeyError) -> Self {
        match err {
            KeyError::Store(store) => Self::Store(store),
            KeyError::Crypto(reason) => Self::Internal(reason),
        }
    }
}

/// What `qrlogin client add` reports.
#[derive(Debug, Clone, Serialize)]
pub struct NewClient {
    pub client_id: String,
    /// Confidential clients only; shown once, stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// An application an account signed in to, as `/m` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    pub granted_at: UnixMillis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredConsent {
    granted_at: UnixMillis,
}

#[derive(Clone)]
pub struct OidcService {
    store: Arc<dyn ProviderStore>,
    keys: SigningKeys,
    /// Seals waiting authorization requests into their URL.
    sealer: Sealer,
    logins: LoginService,
    accounts: AccountService,
    passkeys: PasskeyService,
    limits: Arc<RateLimits>,
    audit: AuditLog,
    /// The issuer identifier: the public URL, without a trailing slash.
    issuer: Arc<str>,
    /// Tells apps of logouts (back-channel).
    backchannel: BackChannel,
}

impl OidcService {
    /// `backchannel`: the same queue the accounts service tells of ended
    /// sessions (its keys sign the ID tokens too).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn ProviderStore>,
        logins: LoginService,
        accounts: AccountService,
        passkeys: PasskeyService,
        limits: Arc<RateLimits>,
        audit: AuditLog,
        issuer: &str,
        backchannel: BackChannel,
    ) -> Self {
        Self {
            keys: backchannel.keys().clone(),
            backchannel,
            sealer: Sealer::new(store.clone()),
            store,
            logins,
            accounts,
            passkeys,
            limits,
            audit,
            issuer: issuer.trim_end_matches('/').into(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn backchannel(&self) -> &BackChannel {
        &self.backchannel
    }

    // ---- clients ----

    pub async fn add_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        public: bool,
    ) -> Result<NewClient, ClientAdminError> {
        let now = now_millis();
        let (client, secret) = Client::register(name, redirect_uris, public, now)?;
        self.store
            .insert(kinds::CLIENT, &client.id, &to_json(&client)?, FOREVER, now)
            .await?;
        tracing::info!(client = %client.id, name = %client.name, "client added");
        Ok(NewClient {
            client_id: client.id,
            client_secret: secret,
        })
    }

    /// Registers a client with its post-logout URIs, audited as `caller`'s
    /// (the admin console and API, `qrlogin client add`).
    pub async fn add_client_as(
        &self,
        name: &str,
        redirect_uris: &[String],
        logout: &LogoutUris,
        public: bool,
        caller: &Caller,
    ) -> Result<(Client, Option<String>), ClientAdminError> {
        let now = now_millis();
        let (client, secret) =
            Client::register_with_logout(name, redirect_uris, logout, public, now)?;
        self.store
            .insert(kinds::CLIENT, &client.id, &to_json(&client)?, FOREVER, now)
            .await?;
        tracing::info!(client = %client.id, name = %client.name, "client added");
        self.audit
            .record_app(AuditEvent::AppAdded, None, &client.id, caller);
        Ok((client, secret))
    }

    /// Gives a confidential client a new secret (shown once): the old one
    /// stops working at once. A public client has none to rotate.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        caller: &Caller,
    ) -> Result<String, ClientAdminError> {
        loop {
            let Some((mut client, record)) = (if plausible_id(client_id) {
                self.load::<Client>(kinds::CLIENT, client_id).await?
            } else {
                None
            }) else {
                return Err(ClientAdminError::NoSuchClient(client_id.to_owned()));
            };
            let Some(secret) = client.rotate_secret() else {
                return Err(ClientAdminError::PublicClient);
            };
            if self
                .store
                .replace(
                    kinds::CLIENT,
                    client_id,
                    record.version,
                    &to_json(&client)?,
                    record.expires_at,
                    now_millis(),
                )
                .await?
            {
                tracing::info!(client = %client_id, "client secret rotated");
                self.audit
                    .record_app(AuditEvent::AppSecretRotated, None, client_id, caller);
                return Ok(secret);
            }
        }
    }

    /// [`Self::remove_client`], audited as `caller`'s.
    pub async fn remove_client_as(
        &self,
        client_id: &str,
        caller: &Caller,
    ) -> Result<(), ClientAdminError> {
        self.remove_client(client_id).await?;
        self.audit
            .record_app(AuditEvent::AppRemoved, None, client_id, caller);
        Ok(())
    }

    /// The clients the account holds live grants for, each with the
    /// scopes granted (of all its grants), by client id.
    pub async fn granted_clients(
        &self,
        account_id: i64,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        let prefix = format!("{account_id}:");
        let mut by_client: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (key, record) in self.store.list(kinds::GRANT, &prefix, now_millis()).await? {
            let scopes = by_client
                .entry(Grant::key_owner(&key).1.to_owned())
                .or_default();
            if let Some(grant) = parse::<Grant>(&record) {
                for scope in grant.scopes {
                    if !scopes.contains(&scope) {
                        scopes.push(scope);
                    }
                }
            }
        }
        Ok(by_client.into_iter().collect())
    }

    pub async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let records = self.store.list(kinds::CLIENT, "", now_millis()).await?;
        let mut clients: Vec<Client> = records.iter().filter_map(|(_, r)| parse(r)).collect();
        clients.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(clients)
    }

    /// Removes the client and everything it was granted.
    pub async fn remove_client(&self, client_id: &str) -> Result<(), ClientAdminError> {
        if self.client(client_id).await?.is_none() {
            return Err(ClientAdminError::NoSuchClient(client_id.to_owned()));
        }
        self.store.remove_key(kinds::CLIENT, client_id).await?;
        // Grants and consents are keyed by account first; a client's are
        // found by listing (removing a client is rare).
        let now = now_millis();
        for kind in [kinds::GRANT, kinds::CONSENT] {
            for (key, _) in self.store.list(kind, "", now).await? {
                if Grant::key_owner(&key).1 == client_id {
                    self.store.remove_key(kind, &key).await?;
                }
            }
        }
        tracing::info!(client = %client_id, "client removed");
        Ok(())
    }

    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        if !plausible_id(client_id) {
            return Ok(None);
        }
        let record = self
            .store
            .get(kinds::CLIENT, client_id, now_millis())
            .await?;
        Ok(record.as_ref().and_then(parse))
    }

    // ---- consents (approving on the phone is the consent) ----

    fn consent_key(account_id: i64, client_id: &str) -> String {
        format!("{account_id}:{client_id}")
    }

    pub(crate) async fn has_consent(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        let key = Self::consent_key(account_id, client_id);
        Ok(self
            .store
            .get(kinds::CONSENT, &key, now_millis())
            .await?
            .is_some())
    }

    pub(crate) async fn remember_consent(
        &self,
        account_id: i64,
        client_id: &str,
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let key = Self::consent_key(account_id, client_id);
        let value = serde_json::json!({ "granted_at": now }).to_string();
        match self
            .store
            .insert(kinds::CONSENT, &key, &value, FOREVER, now)
            .await
        {
            Err(StoreError::Duplicate) => Ok(()),
            other => other,
        }
    }

    /// The applications `account_id` signed in to, for `/m`.
    pub async fn consents(&self, account_id: i64) -> Result<Vec<Consent>, StoreError> {
        let prefix = format!("{account_id}:");
        let now = now_millis();
        let mut consents = Vec::new();
        for (key, record) in self.store.list(kinds::CONSENT, &prefix, now).await? {
            let Some(client_id) = key.strip_prefix(&prefix) else {
                continue;
            };
            let Some(stored) = parse::<StoredConsent>(&record) else {
                continue;
            };
            let client_name = match self.client(client_id).await? {
                Some(client) => client.name,
                None => continue,
            };
            consents.push(Consent {
                client_id: client_id.to_owned(),
                client_name,
                granted_at: stored.granted_at,
            });
        }
        consents.sort_by_key(|c| std::cmp::Reverse(c.granted_at));
        Ok(consents)
    }

    /// Withdraws the consent and revokes every token the client holds for
    /// the account; it must ask the phone again.
    pub async fn withdraw_consent(
        &self,
        account_id: i64,
        client_id: &str,
        caller: &Caller,
    ) -> Result<bool, StoreError> {
        let key = Self::consent_key(account_id, client_id);
        // Exactly this client's consent: a client id typed into the form
        // (say, a prefix of a real one) must not reach another's.
        if !plausible_id(client_id) {
            return Ok(false);
        }
        let notices = match self.accounts.any_account_by_id(account_id).await? {
            Some(account) => self.backchannel.notice_for_app(&account, client_id).await?,
            None => Vec::new(),
        };
        let removed = self.store.remove_key(kinds::CONSENT, &key).await?;
        self.store.remove(kinds::GRANT, &format!("{key}:")).await?;
        if removed {
            self.backchannel.notify(notices).await;
            self.audit.record_app(
                AuditEvent::AppGrantRevoked,
                Some(account_id),
                client_id,
                caller,
            );
        }
        Ok(removed)
    }

    /// What removing an account takes with it here: its consents and its
    /// grants (every code and token made from a grant dies with it).
    pub(crate) fn account_records(account_id: i64) -> Vec<RecordSelector> {
        [kinds::CONSENT, kinds::GRANT]
            .into_iter()
            .map(|kind| RecordSelector {
                kind,
                // The separator keeps account 7 from taking account 70's.
                key: KeyMatch::Prefix(format!("{account_id}:")),
            })
            .collect()
    }

    /// What disabling an account takes with it here: its grants, so that
    /// every app is signed out (codes, access and refresh tokens die with
    /// them). Its consents stay: enabled again, it is not asked twice.
    pub(crate) fn account_grants(account_id: i64) -> RecordSelector {
        RecordSelector {
            kind: kinds::GRANT,
            key: KeyMatch::Prefix(format!("{account_id}:")),
        }
    }

    /// A live record of `kind` and what it holds; `None` when there is
    /// none (or it cannot be read as a `T`).
    async fn load<T: DeserializeOwned>(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<Option<(T, ProviderRecord)>, StoreError> {
        let record = self.store.get(kind, key, now_millis()).await?;
        Ok(record.and_then(|r| Some((parse(&r)?, r))))
    }

    // ---- grants ----

    async fn grant(&self, key: &str) -> Result<Option<(Grant, ProviderRecord)>, StoreError> {
        self.load(kinds::GRANT, key).await
    }

    /// Revokes a grant: every code and token made from it stops working.
    async fn revoke_grant(&self, key: &str, caller: &Caller) -> Result<(), StoreError> {
        self.store.remove_key(kinds::GRANT, key).await?;
        tracing::info!(grant = %key, "grant revoked");
        let (account_id, client_id) = Grant::key_owner(key);
        self.audit
            .record_app(AuditEvent::AppGrantRevoked, account_id, client_id, caller);
        Ok(())
    }

    /// Forgets records whose time ran out.
    pub async fn purge(&self, now: UnixMillis) {
        if let Err(err) = self.store.purge(now).await {
            tracing::warn!(%err, "cannot purge provider records");
        }
    }
}

/// Why a client could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ClientAdminError {
    #[error(transparent)]
    Invalid(#[from] ClientError),
    #[error("no client with id {0:?}")]
    NoSuchClient(String),
    #[error("a public client has no secret to rotate")]
    PublicClient,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<OidcError> for ClientAdminError {
    fn from(err: OidcError) -> Self {
        Self::Internal(err.to_string())
    }
}

fn to_json(value: &impl Serialize) -> Result<String, OidcError> {
    serde_json::to_string(value).map_err(|e| OidcError::Internal(e.to_string()))
}

/// Milliseconds as whole seconds, for `expires_in` and JWT times.
fn seconds(ms: u64) -> u64 {
    Duration::from_millis(ms).as_secs()
}
