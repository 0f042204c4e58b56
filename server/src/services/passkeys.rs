//! Passkeys (WebAuthn, by `webauthn-rs`): an account adds, names, lists and
//! removes them; a phone signs in with one and no password; an account may
//! turn its password off; and approving a sign-in may need one, with the
//! assertion's challenge derived from what the phone showed
//! ([`ShownApproval`]).
//!
//! Everything lives in the record store beside the OpenID Connect
//! provider's records (kind and key below), so passkeys work the same on
//! SQLite and PostgreSQL and across instances. A ceremony's state (between
//! the browser's two calls) is a record too, used once.

use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::{
    accounts::{AccountService, CurrentSession},
    limits::{ip_key, LimitError, RateLimited, RateLimits},
};
use crate::{
    domain::{
        account::{Account, InvalidInput, SignInMethod},
        caller::Caller,
        passkey::{ApprovalPolicy, PasskeyName, ShownApproval},
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    storage::{parse_record as parse, ProviderStore, StoreError},
};

/// The record kinds, as the store names them.
mod kinds {
    /// `{account_id}` → the account's WebAuthn user handle.
    pub const USER: &str = "passkey_user";
    /// `{handle}:{credential id}` → a [`super::StoredPasskey`].
    pub const PASSKEY: &str = "passkey";
    /// `{account_id}` → the account's [`super::AccountSettings`].
    pub const SETTINGS: &str = "account_settings";
    /// `{ceremony id}` → a registration's or a sign-in's state.
    pub const CEREMONY: &str = "passkey_ceremony";
}

/// How long a browser has between asking for a ceremony and finishing it.
const CEREMONY_MS: UnixMillis = 5 * 60 * 1000;
const FOREVER: UnixMillis = i64::MAX as u64;
/// More passkeys than any person needs; bounds what a list returns.
const MAX_PASSKEYS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// This server's public URL is an IP address (or WebAuthn refused it).
    #[error("passkeys need the server's public URL to have a host name, not an IP address")]
    Unavailable,
    #[error("{0}")]
    InvalidInput(#[from] InvalidInput),
    /// The ceremony is unknown, used or older than five minutes.
    #[error("this passkey request has expired; please try again")]
    CeremonyGone,
    /// Verification failed: another challenge, origin, key or signature.
    #[error("the passkey did not confirm this")]
    Refused,
    /// This approval needs a passkey assertion and none was given.
    #[error("approving this sign-in needs your passkey")]
    Required,
    /// The account has no passkey yet, but the approval needs one.
    #[error("add a passkey on this phone first: approving this sign-in needs one")]
    NoPasskey,
    #[error("the password cannot be turned off without a passkey")]
    LastWayIn,
    #[error("no such passkey on this account")]
    NotFound,
    #[error("an account has at most {MAX_PASSKEYS} passkeys")]
    TooMany,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<LimitError> for PasskeyError {
    fn from(err: LimitError) -> Self {
        match err {
            LimitError::Limited(limited) => Self::RateLimited(limited),
            LimitError::Store(store) => Self::Store(store),
        }
    }
}

/// A registered passkey as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPasskey {
    account_id: i64,
    name: String,
    created_at: UnixMillis,
    last_used_at: Option<UnixMillis>,
    passkey: Passkey,
}

/// A passkey as `/m` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    pub created_at: UnixMillis,
    pub last_used_at: Option<UnixMillis>,
}

/// What an account chose about its own sign-ins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Password sign-in refused (only with at least one passkey).
    #[serde(default)]
    pub password_off: bool,
    /// Every approval needs the passkey, whatever the server's default.
    #[serde(default)]
    pub approve_with_passkey: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct UserHandle {
    handle: Uuid,
}

#[derive(Debug, Serialize, Deserialize)]
enum CeremonyState {
    Register {
        account_id: i64,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
}

/// Options for the browser (`navigator.credentials.create/get`) and the id
/// it hands back with the result.
#[derive(Debug, Clone, Serialize)]
pub struct Ceremony<T> {
    pub ceremony: String,
    pub options: T,
}

/// An account's settings, read by the password sign-in as well.
#[derive(Clone)]
pub struct SettingsStore(Arc<dyn ProviderStore>);

impl SettingsStore {
    pub fn new(store: Arc<dyn ProviderStore>) -> Self {
        Self(store)
    }

    pub async fn get(&self, account_id: i64) -> Result<AccountSettings, StoreError> {
        let record = self
            .0
            .get(kinds::SETTINGS, &account_id.to_string(), now_millis())
            .await?;
        Ok(record.as_ref().and_then(parse).unwrap_or_default())
    }

    /// Changes the settings with `change`, by compare-and-set.
    async fn update(
        &self,
        account_id: i64,
        change: impl Fn(&mut AccountSettings),
    ) -> Result<AccountSettings, PasskeyError> {
        let key = account_id.to_string();
        loop {
            let now = now_millis();
            let record = self.0.get(kinds::SETTINGS, &key, now).await?;
            let mut settings: AccountSettings = record.as_ref().and_then(parse).unwrap_or_default();
            change(&mut settings);
            let value = to_json(&settings)?;
            let stored = match &record {
                None => match self
                    .0
                    .insert(kinds::SETTINGS, &key, &value, FOREVER, now)
                    .await
                {
                    Err(StoreError::Duplicate) => false,
                    other => other.map(|()| true)?,
                },
                Some(record) => {
                    self.0
                        .replace(kinds::SETTINGS, &key, record.version, &value, FOREVER, now)
                        .await?
                }
            };
            if stored {
                return Ok(settings);
            }
        }
    }
}

#[derive(Clone)]
pub struct PasskeyService {
    store: Arc<dyn ProviderStore>,
    /// `None` when the public URL cannot be a WebAuthn relying party.
    webauthn: Option<Arc<Webauthn>>,
    settings: SettingsStore,
    accounts: AccountService,
    limits: Arc<RateLimits>,
    policy: ApprovalPolicy,
}

impl PasskeyService {
    /// `public_url`: the relying party's origin; its host is the RP id.
    pub fn new(
        store: Arc<dyn ProviderStore>,
        accounts: AccountService,
        limits: Arc<RateLimits>,
        public_url: &str,
        policy: ApprovalPolicy,
    ) -> Self {
        let webauthn = relying_party(public_url).map(Arc::new);
        if webauthn.is_none() {
            tracing::info!(
                public_url,
                "passkeys are off: the public URL's host is not a domain name"
            );
        }
        Self {
            settings: SettingsStore::new(store.clone()),
            store,
            webauthn,
            accounts,
            limits,
            policy,
        }
    }

    pub fn available(&self) -> bool {
        self.webauthn.is_some()
    }

    pub fn policy(&self) -> ApprovalPolicy {
        self.policy
    }

    fn webauthn(&self) -> Result<&Webauthn, PasskeyError> {
        self.webauthn.as_deref().ok_or(PasskeyError::Unavailable)
    }

    pub async fn settings(&self, account_id: i64) -> Result<AccountSettings, StoreError> {
        self.settings.get(account_id).await
    }

    // ---- the account's passkeys ----

    async fn handle(&self, account_id: i64) -> Result<Option<Uuid>, StoreError> {
        let record = self
            .store
            .get(kinds::USER, &account_id.to_string(), now_millis())
            .await?;
        Ok(record
            .as_ref()
            .and_then(parse::<UserHandle>)
            .map(|u| u.handle))
    }

    /// The account's handle, made on first use (a random UUID: the
    /// authenticator stores it, so it says nothing about the account).
    async fn handle_or_new(&self, account_id: i64) -> Result<Uuid, PasskeyError> {
        if let Some(handle) = self.handle(account_id).await? {
            return Ok(handle);
        }
        let handle = Uuid::new_v4();
        let value = to_json(&UserHandle { handle })?;
        let key = account_id.to_string();
        match self
            .store
            .insert(kinds::USER, &key, &value, FOREVER, now_millis())
            .await
        {
            Ok(()) => Ok(handle),
            // Made by a racing request: take that one.
            Err(StoreError::Duplicate) => {
                self.handle(account_id).await?.ok_or(PasskeyError::NotFound)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn stored(&self, account_id: i64) -> Result<Vec<(String, StoredPasskey)>, StoreError> {
        let Some(handle) = self.handle(account_id).await? else {
            return Ok(Vec::new());
        };
        let records = self
            .store
            .list(kinds::PASSKEY, &format!("{handle}:"), now_millis())
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|(key, record)| Some((key, parse::<StoredPasskey>(&record)?)))
            .filter(|(_, stored)| stored.account_id == account_id)
            .collect())
    }

    pub async fn list(&self, account_id: i64) -> Result<Vec<PasskeyInfo>, StoreError> {
        let mut list: Vec<PasskeyInfo> = self
            .stored(account_id)
            .await?
            .into_iter()
            .map(|(_, stored)| PasskeyInfo {
                id: URL_SAFE_NO_PAD.encode(stored.passkey.cred_id()),
                name: stored.name,
                created_at: stored.created_at,
                last_used_at: stored.last_used_at,
            })
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(list)
    }

    /// Starts adding a passkey to the signed-in account.
    pub async fn start_registration(
        &self,
        current: &CurrentSession,
    ) -> Result<Ceremony<CreationChallengeResponse>, PasskeyError> {
        let webauthn = self.webauthn()?;
        let account = &current.account;
        let existing = self.stored(account.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(PasskeyError::TooMany);
        }
        let handle = self.handle_or_new(account.id).await?;
        let exclude = existing
            .iter()
            .map(|(_, s)| s.passkey.cred_id().clone())
            .collect();
        let (mut options, state) = webauthn
            .start_passkey_registration(
                handle,
                &account.username,
                &account.display_name,
                Some(exclude),
            )
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        // Ask for a discoverable credential, so that signing in needs no
        // username; the verification does not depend on it.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.require_resident_key = true;
            selection.resident_key = Some(ResidentKeyRequirement::Required);
        }
        let ceremony = self
            .new_ceremony(&CeremonyState::Register {
                account_id: account.id,
                state,
            })
            .await?;
        Ok(Ceremony { ceremony, options })
    }

    /// Verifies the browser's new credential and stores it under `name`.
    pub async fn finish_registration(
        &self,
        current: &CurrentSession,
        ceremony: &str,
        name: &str,
        credential: &str,
    ) -> Result<PasskeyInfo, PasskeyError> {
        let webauthn = self.webauthn()?;
        let name = PasskeyName::parse(name)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_str(credential)
            .map_err(|_| InvalidInput("the passkey's answer is not a WebAuthn credential"))?;
        let CeremonyState::Register { account_id, state } = self.take_ceremony(ceremony).await?
        else {
            return Err(PasskeyError::CeremonyGone);
        };
        if account_id != current.account.id {
            return Err(PasskeyError::CeremonyGone);
        }
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::debug!(error = %e, "passkey registration refused");
                PasskeyError::Refused
            })?;
        let handle = self.handle_or_new(account_id).await?;
        let id = URL_SAFE_NO_PAD.encode(passkey.cred_id());
        let now = now_millis();
        let stored = StoredPasskey {
            account_id,
            name: name.as_str().to_owned(),
            created_at: now,
            last_used_at: None,
            passkey,
        };
        self.store
            .insert(
                kinds::PASSKEY,
                &format!("{handle}:{id}"),
                &to_json(&stored)?,
                FOREVER,
                now,
            )
            .await
            .map_err(|e| match e {
                StoreError::Duplicate => PasskeyError::InvalidInput(InvalidInput(
                    "this passkey is already on the account",
                )),
                e => e.into(),
            })?;
        tracing::info!(account = %current.account.username, passkey = %id, "passkey added");
        Ok(PasskeyInfo {
            id,
            name: stored.name,
            created_at: now,
            last_used_at: None,
        })
    }

    /// Removes one of the account's passkeys; not the last one while the
    /// password is off (the account would have no way in). Removing the
    /// last one also turns "ask for my passkey" off.
    pub async fn remove(&self, account_id: i64, id: &str) -> Result<(), PasskeyError> {
        let stored = self.stored(account_id).await?;
        let Some((key, _)) = stored
            .iter()
            .find(|(key, _)| key.rsplit(':').next() == Some(id))
        else {
            return Err(PasskeyError::NotFound);
        };
        let last = stored.len() == 1;
        if last && self.settings.get(account_id).await?.password_off {
            return Err(PasskeyError::LastWayIn);
        }
        self.store.remove(kinds::PASSKEY, key).await?;
        if last {
            // Without a passkey, "ask for my passkey" could only lock the
            // account's approvals.
            self.settings
                .update(account_id, |s| s.approve_with_passkey = false)
                .await?;
        }
        tracing::info!(account_id, passkey = %id, "passkey removed");
        Ok(())
    }

    /// Turns password sign-in on or off; off needs a passkey.
    pub async fn set_password_enabled(
        &self,
        account_id: i64,
        enabled: bool,
    ) -> Result<AccountSettings, PasskeyError> {
        if !enabled && self.stored(account_id).await?.is_empty() {
            return Err(PasskeyError::LastWayIn);
        }
        self.settings
            .update(account_id, |s| s.password_off = !enabled)
            .await
    }

    /// The account's own "always ask for my passkey"; needs a passkey.
    pub async fn set_approve_with_passkey(
        &self,
        account_id: i64,
        on: bool,
    ) -> Result<AccountSettings, PasskeyError> {
        if on && self.stored(account_id).await?.is_empty() {
            return Err(PasskeyError::NoPasskey);
        }
        self.settings
            .update(account_id, |s| s.approve_with_passkey = on)
            .await
    }

    // ---- signing in with a passkey ----

    /// Starts a sign-in with any of this site's passkeys (no username).
    pub async fn start_sign_in(
        &self,
        caller: &Caller,
    ) -> Result<Ceremony<RequestChallengeResponse>, PasskeyError> {
        let webauthn = self.webauthn()?;
        self.limits.sign_in_ip.check(&ip_key(caller.ip)).await?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let ceremony = self.new_ceremony(&CeremonyState::SignIn { state }).await?;
        Ok(Ceremony { ceremony, options })
    }

    /// Verifies the assertion and signs its account in: the new session's
    /// token and the account.
    pub async fn finish_sign_in(
        &self,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
    ) -> Result<(Secret, Account), PasskeyError> {
        let webauthn = self.webauthn()?;
        let credential: PublicKeyCredential = serde_json::from_str(credential)
            .map_err(|_| InvalidInput("the passkey's answer is not a WebAuthn assertion"))?;
        let CeremonyState::SignIn { state } = self.take_ceremony(ceremony).await? else {
            return Err(PasskeyError::CeremonyGone);
        };
        let (handle, cred_id) = webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| PasskeyError::Refused)?;
        let key = format!("{handle}:{}", URL_SAFE_NO_PAD.encode(cred_id));
        let now = now_millis();
        let record = self.store.get(kinds::PASSKEY, &key, now).await?;
        let Some(stored) = record.as_ref().and_then(parse::<StoredPasskey>) else {
            return Err(PasskeyError::Refused);
        };
        let result = webauthn
            .finish_discoverable_authentication_v2(&credential, state, &stored.passkey)
            .map_err(|e| {
                tracing::debug!(error = %e, "passkey sign-in refused");
                PasskeyError::Refused
            })?;
        self.used(&key, &result).await;
        let account = self
            .accounts
            .account_by_id(stored.account_id)
            .await?
            .ok_or(PasskeyError::Refused)?;
        let token = self
            .accounts
            .start_session(&account, SignInMethod::Passkey, caller)
            .await?;
        Ok((token, account))
    }

    // ---- approving with a passkey (sign what is shown) ----

    /// Whether approving `shown` needs a passkey for this account.
    pub async fn approval_needs_passkey(
        &self,
        account_id: i64,
        same_network: bool,
    ) -> Result<bool, StoreError> {
        // Without passkeys here (an IP address as public URL) no account has
        // one or asked for it, and the server cannot require them: no read.
        if !self.available() {
            return Ok(false);
        }
        let wants = self.settings.get(account_id).await?.approve_with_passkey;
        Ok(self.policy.needs_passkey(wants, same_network))
    }

    /// The browser's options for approving exactly `shown`: the account's
    /// passkeys, user verification required, and the derived challenge.
    pub async fn approval_options(
        &self,
        account_id: i64,
        shown: &ShownApproval<'_>,
    ) -> Result<RequestChallengeResponse, PasskeyError> {
        let (mut options, _) = self.approval_state(account_id, shown).await?;
        options.public_key.challenge = shown.challenge().to_vec();
        Ok(options)
    }

    /// Lets an approval of `shown` go ahead: at once when no passkey is
    /// needed, else only with an assertion made for exactly `shown`.
    pub async fn authorize_approval(
        &self,
        account_id: i64,
        shown: &ShownApproval<'_>,
        same_network: bool,
        assertion: Option<&str>,
    ) -> Result<(), PasskeyError> {
        if !self
            .approval_needs_passkey(account_id, same_network)
            .await?
        {
            return Ok(());
        }
        let assertion = assertion.ok_or(PasskeyError::Required)?;
        let credential: PublicKeyCredential = serde_json::from_str(assertion)
            .map_err(|_| InvalidInput("the passkey's answer is not a WebAuthn assertion"))?;
        let (_, state) = self.approval_state(account_id, shown).await?;
        let result = self
            .webauthn()?
            .finish_passkey_authentication(&credential, &state)
            .map_err(|e| {
                tracing::info!(account_id, error = %e, "approval passkey refused");
                PasskeyError::Refused
            })?;
        let id = URL_SAFE_NO_PAD.encode(result.cred_id());
        if let Some((key, _)) = self
            .stored(account_id)
            .await?
            .into_iter()
            .find(|(key, _)| key.ends_with(&format!(":{id}")))
        {
            self.used(&key, &result).await;
        }
        Ok(())
    }

    /// The state that verifies an approval of `shown`: webauthn-rs's own,
    /// with its random challenge replaced by the derived one. (The state is
    /// opaque; its serialised form is the one way to set the challenge.)
    async fn approval_state(
        &self,
        account_id: i64,
        shown: &ShownApproval<'_>,
    ) -> Result<(RequestChallengeResponse, PasskeyAuthentication), PasskeyError> {
        let webauthn = self.webauthn()?;
        let passkeys: Vec<Passkey> = self
            .stored(account_id)
            .await?
            .into_iter()
            .map(|(_, s)| s.passkey)
            .collect();
        if passkeys.is_empty() {
            return Err(PasskeyError::NoPasskey);
        }
        let (options, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let mut value =
            serde_json::to_value(&state).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        let challenge = value
            .pointer_mut("/ast/challenge")
            .ok_or_else(|| PasskeyError::Internal("webauthn state has no challenge".into()))?;
        *challenge = URL_SAFE_NO_PAD.encode(shown.challenge()).into();
        let state =
            serde_json::from_value(value).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        Ok((options, state))
    }

    /// Records a passkey's use (its counter and when); best effort.
    async fn used(&self, key: &str, result: &webauthn_rs::prelude::AuthenticationResult) {
        let now = now_millis();
        let Ok(Some(record)) = self.store.get(kinds::PASSKEY, key, now).await else {
            return;
        };
        let Some(mut stored) = parse::<StoredPasskey>(&record) else {
            return;
        };
        stored.passkey.update_credential(result);
        stored.last_used_at = Some(now);
        if let Ok(value) = serde_json::to_string(&stored) {
            if let Err(err) = self
                .store
                .replace(kinds::PASSKEY, key, record.version, &value, FOREVER, now)
                .await
            {
                tracing::warn!(error = %err, "cannot record a passkey's use");
            }
        }
    }

    // ---- ceremonies ----

    async fn new_ceremony(&self, state: &CeremonyState) -> Result<String, PasskeyError> {
        let id = Secret::new_random().encode();
        let now = now_millis();
        self.store
            .insert(
                kinds::CEREMONY,
                &id,
                &to_json(state)?,
                now + CEREMONY_MS,
                now,
            )
            .await?;
        Ok(id)
    }

    /// The ceremony's state, removed: each is finished at most once.
    async fn take_ceremony(&self, id: &str) -> Result<CeremonyState, PasskeyError> {
        if Secret::decode(id).is_none() {
            return Err(PasskeyError::CeremonyGone);
        }
        let record = self.store.get(kinds::CEREMONY, id, now_millis()).await?;
        let state = record
            .as_ref()
            .and_then(parse)
            .ok_or(PasskeyError::CeremonyGone)?;
        if self.store.remove(kinds::CEREMONY, id).await? == 0 {
            return Err(PasskeyError::CeremonyGone);
        }
        Ok(state)
    }
}

/// The WebAuthn relying party for `public_url`, if its host can be one.
fn relying_party(public_url: &str) -> Option<Webauthn> {
    let origin = url::Url::parse(public_url).ok()?;
    let host = match origin.host()? {
        url::Host::Domain(host) => host.to_owned(),
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => return None,
    };
    WebauthnBuilder::new(&host, &origin)
        .ok()?
        .rp_name("qrlogin")
        .build()
        .ok()
}

fn to_json(value: &impl Serialize) -> Result<String, PasskeyError> {
    serde_json::to_string(value).map_err(|e| PasskeyError::Internal(e.to_string()))
}
