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
//!
//! Changing how an account signs in (adding or removing a passkey, the
//! password on or off, "ask for my passkey" off) needs a fresh proof that
//! its owner is there ([`crate::domain::credentials`]): the session alone,
//! which a thief may hold, is not enough. Each such change is decided and
//! written as one compare-and-set on the account's settings record, which
//! also lists the passkeys removed (a removed passkey stops counting in the
//! same write that checks the account keeps a way in), so two racing
//! changes cannot both pass the lock-out guard.

mod join;
mod links;

use std::sync::Arc;

pub use links::LinkProgress;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::{
    accounts::{AccountError, AccountService, CurrentSession},
    audit::AuditLog,
    invites::{Invite, InviteKind, InviteStore, NewAccount, Registration},
    limits::{ip_key, LimitError, RateLimited, RateLimits},
};
use crate::{
    domain::{
        account::{Account, InvalidInput, Password, SignInMethod},
        audit::AuditEvent,
        caller::Caller,
        credentials::{
            ChangeRefused, CredentialChange, CredentialState, Proof, ProofKind, ProofNeeded,
            FRESH_PROOF_MS,
        },
        passkey::{ApprovalPolicy, PasskeyName, ShownApproval},
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    storage::{parse_record as parse, ProviderRecord, ProviderStore, StoreError},
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
    /// `{session id}` → the session's latest [`crate::domain::credentials::Proof`].
    pub const PROOF: &str = "credential_proof";
}

/// How long a browser has between asking for a ceremony and finishing it.
const CEREMONY_MS: UnixMillis = 5 * 60 * 1000;
const FOREVER: UnixMillis = i64::MAX as u64;
/// More passkeys than any person needs; bounds what a list returns.
const MAX_PASSKEYS: usize = 20;
/// Removed passkeys remembered in the settings record (for `/m`'s notice
/// and to ignore a record whose deletion did not happen); oldest go first.
const MAX_REMOVED: usize = 50;

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
    #[error("the account must keep a passkey or its password")]
    LastWayIn,
    /// A change to the account's credentials without a fresh proof.
    #[error("confirm it is you first, with your passkey or password")]
    ConfirmFirst,
    /// The account has nothing but its session to prove itself with.
    #[error(
        "this account has no passkey or password to confirm changes with; ask an administrator"
    )]
    NoCredential,
    /// The password given to confirm a change was wrong.
    #[error("wrong password")]
    WrongPassword,
    #[error("no such passkey on this account")]
    NotFound,
    #[error("an account has at most {MAX_PASSKEYS} passkeys")]
    TooMany,
    /// The invite is unknown, used, revoked or expired, or (an enroll
    /// invite) its account can already sign in.
    #[error("this invite can no longer be used: ask for a new one")]
    InviteGone,
    /// Open sign-up is off here (`--registration invite`).
    #[error("this server makes accounts by invitation only: ask an administrator")]
    RegistrationClosed,
    #[error("the username {0} is taken: choose another")]
    UsernameTaken(String),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<ChangeRefused> for PasskeyError {
    fn from(refused: ChangeRefused) -> Self {
        match refused {
            ChangeRefused::LastWayIn => Self::LastWayIn,
            ChangeRefused::NoPasskey => Self::NoPasskey,
        }
    }
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSettings {
    /// Password sign-in refused (only with at least one passkey).
    #[serde(default)]
    pub password_off: bool,
    /// Every approval needs the passkey, whatever the server's default.
    #[serde(default)]
    pub approve_with_passkey: bool,
    /// Passkeys removed, newest last: one stops counting in the write that
    /// removes it (its record is deleted after).
    #[serde(default)]
    pub removed: Vec<RemovedPasskey>,
}

impl AccountSettings {
    fn was_removed(&self, id: &str) -> bool {
        self.removed.iter().any(|r| r.id == id)
    }

    fn credentials(&self, passkeys: usize) -> CredentialState {
        CredentialState {
            passkeys,
            password_on: !self.password_off,
            approve_with_passkey: self.approve_with_passkey,
        }
    }
}

/// A passkey that was removed, as `/m` tells of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedPasskey {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    pub removed_at: UnixMillis,
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
    /// Proving presence before a credential change, for one session.
    Confirm {
        account_id: i64,
        session_id: String,
        state: PasskeyAuthentication,
    },
    /// A first passkey by invite, with no session: `invite` is the
    /// invite's record key (its token's hash).
    Enroll {
        account_id: i64,
        invite: String,
        state: PasskeyRegistration,
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
        Ok(self.read(account_id).await?.1)
    }

    /// The settings and the record they came from (`None`: never written).
    async fn read(
        &self,
        account_id: i64,
    ) -> Result<(Option<ProviderRecord>, AccountSettings), StoreError> {
        let record = self
            .0
            .get(kinds::SETTINGS, &account_id.to_string(), now_millis())
            .await?;
        let settings = record.as_ref().and_then(parse).unwrap_or_default();
        Ok((record, settings))
    }

    /// Stores `settings` only if the record is still as `read` found it;
    /// false when somebody changed it first (read again and decide again).
    async fn write_if_unchanged(
        &self,
        account_id: i64,
        read: &Option<ProviderRecord>,
        settings: &AccountSettings,
    ) -> Result<bool, PasskeyError> {
        let key = account_id.to_string();
        let value = to_json(settings)?;
        let now = now_millis();
        Ok(match read {
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
        })
    }

    /// Changes the settings with `change`, by compare-and-set.
    pub(crate) async fn update(
        &self,
        account_id: i64,
        change: impl Fn(&mut AccountSettings),
    ) -> Result<AccountSettings, PasskeyError> {
        loop {
            let (record, mut settings) = self.read(account_id).await?;
            change(&mut settings);
            if self
                .write_if_unchanged(account_id, &record, &settings)
                .await?
            {
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
    audit: AuditLog,
    /// Whether `/join` makes accounts (set by [`super::Services::with_registration`]).
    registration: Registration,
}

/// Whom an invite sets up: an account, or the one an open sign-up makes.
#[derive(Debug, Clone)]
pub enum Invitee {
    Account(Account),
    New(NewAccount),
}

impl Invitee {
    pub fn username(&self) -> &str {
        match self {
            Self::Account(account) => &account.username,
            Self::New(new) => &new.username,
        }
    }

    pub fn display_name(&self) -> &str {
        match self {
            Self::Account(account) => &account.display_name,
            Self::New(new) => &new.display_name,
        }
    }

    /// The account's id; 0 for one not yet made.
    fn id(&self) -> i64 {
        match self {
            Self::Account(account) => account.id,
            Self::New(_) => 0,
        }
    }
}

/// What the invite page shows for a live invite.
pub struct OpenedInvite {
    pub invitee: Invitee,
    pub kind: InviteKind,
    /// A phone link this phone claimed, not yet matched: the number it
    /// shows for the first phone to pick.
    pub link_number: Option<u8>,
    /// A phone link this phone has just claimed: the secret it keeps (a
    /// cookie) to be known again.
    pub new_claim: Option<Secret>,
}

impl PasskeyService {
    /// `public_url`: the relying party's origin; its host is the RP id.
    pub fn new(
        store: Arc<dyn ProviderStore>,
        accounts: AccountService,
        limits: Arc<RateLimits>,
        public_url: &str,
        policy: ApprovalPolicy,
        audit: AuditLog,
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
            audit,
            registration: Registration::default(),
        }
    }

    /// Who may make their own account here.
    pub fn registration(&self) -> Registration {
        self.registration
    }

    pub(crate) fn set_registration(&mut self, registration: Registration) {
        self.registration = registration;
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

    /// The account's passkeys that count: stored and not removed.
    async fn stored(&self, account_id: i64) -> Result<Vec<(String, StoredPasskey)>, StoreError> {
        let settings = self.settings.get(account_id).await?;
        self.stored_with(account_id, &settings).await
    }

    /// [`Self::stored`] with the settings already read (read them first: a
    /// removal marks the settings before it deletes the record).
    async fn stored_with(
        &self,
        account_id: i64,
        settings: &AccountSettings,
    ) -> Result<Vec<(String, StoredPasskey)>, StoreError> {
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
            .filter(|(key, stored)| {
                stored.account_id == account_id && !settings.was_removed(credential_id(key))
            })
            .collect())
    }

    /// The settings, their record, the passkeys that count, and the
    /// account's credentials as the rules see them.
    async fn credentials(&self, account_id: i64) -> Result<Credentials, StoreError> {
        let (record, settings) = self.settings.read(account_id).await?;
        let passkeys = self.stored_with(account_id, &settings).await?;
        Ok(Credentials {
            state: settings.credentials(passkeys.len()),
            record,
            settings,
            passkeys,
        })
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

    /// Starts adding a passkey to the signed-in account (with a fresh
    /// proof: a thief's own passkey would be a way in for good).
    pub async fn start_registration(
        &self,
        current: &CurrentSession,
    ) -> Result<Ceremony<CreationChallengeResponse>, PasskeyError> {
        let webauthn = self.webauthn()?;
        let account = &current.account;
        let credentials = self.credentials(account.id).await?;
        self.require_proof(current, CredentialChange::AddPasskey, &credentials.state)
            .await?;
        let (options, state) = self
            .registration_options(webauthn, account, &credentials.passkeys)
            .await?;
        let ceremony = self
            .new_ceremony(&CeremonyState::Register {
                account_id: account.id,
                state,
            })
            .await?;
        Ok(Ceremony { ceremony, options })
    }

    /// Creation options for one more passkey of `account` (none of those
    /// it has: `existing`), and the state that verifies the answer.
    async fn registration_options(
        &self,
        webauthn: &Webauthn,
        account: &Account,
        existing: &[(String, StoredPasskey)],
    ) -> Result<(CreationChallengeResponse, PasskeyRegistration), PasskeyError> {
        if existing.len() >= MAX_PASSKEYS {
            return Err(PasskeyError::TooMany);
        }
        let handle = self.handle_or_new(account.id).await?;
        let exclude = existing
            .iter()
            .map(|(_, s)| s.passkey.cred_id().clone())
            .collect();
        creation_options(
            webauthn,
            handle,
            &account.username,
            &account.display_name,
            exclude,
        )
    }

    /// Keeps a verified new passkey of `account_id` under `name`.
    async fn keep_passkey(
        &self,
        account_id: i64,
        name: &PasskeyName,
        passkey: Passkey,
        caller: &Caller,
    ) -> Result<PasskeyInfo, PasskeyError> {
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
        tracing::info!(account_id, passkey = %id, "passkey added");
        self.audit
            .record(AuditEvent::PasskeyAdded, None, Some(account_id), caller);
        Ok(PasskeyInfo {
            id,
            name: stored.name,
            created_at: now,
            last_used_at: None,
        })
    }

    /// Verifies the browser's new credential and stores it under `name`.
    pub async fn finish_registration(
        &self,
        current: &CurrentSession,
        ceremony: &str,
        name: &str,
        credential: &str,
        caller: &Caller,
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
        // Again: the proof may have run out since the ceremony began.
        let credentials = self.credentials(account_id).await?;
        self.require_proof(current, CredentialChange::AddPasskey, &credentials.state)
            .await?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::debug!(error = %e, "passkey registration refused");
                PasskeyError::Refused
            })?;
        self.keep_passkey(account_id, &name, passkey, caller).await
    }

    /// Removes one of the account's passkeys (with a fresh proof); never
    /// the last way in. The removal is decided and marked in one
    /// compare-and-set on the settings, then the record is deleted.
    pub async fn remove(
        &self,
        current: &CurrentSession,
        id: &str,
        caller: &Caller,
    ) -> Result<(), PasskeyError> {
        let account_id = current.account.id;
        let change = CredentialChange::RemovePasskey;
        let key = loop {
            let credentials = self.credentials(account_id).await?;
            let Some((key, stored)) = credentials
                .passkeys
                .iter()
                .find(|(key, _)| credential_id(key) == id)
            else {
                return Err(PasskeyError::NotFound);
            };
            self.require_proof(current, change, &credentials.state)
                .await?;
            let next = change.apply(&credentials.state)?;
            let mut settings = credentials.settings.clone();
            settings.approve_with_passkey = next.approve_with_passkey;
            settings.removed.push(RemovedPasskey {
                id: id.to_owned(),
                name: stored.name.clone(),
                removed_at: now_millis(),
            });
            let excess = settings.removed.len().saturating_sub(MAX_REMOVED);
            settings.removed.drain(..excess);
            if self
                .settings
                .write_if_unchanged(account_id, &credentials.record, &settings)
                .await?
            {
                break key.clone();
            }
        };
        // Already out of every count; a record left by a failure here is
        // ignored by every read.
        if let Err(err) = self.store.remove_key(kinds::PASSKEY, &key).await {
            tracing::warn!(account_id, passkey = %id, error = %err, "removed passkey's record stays (ignored)");
        }
        tracing::info!(account_id, passkey = %id, "passkey removed");
        self.audit
            .record(AuditEvent::PasskeyRemoved, None, Some(account_id), caller);
        Ok(())
    }

    /// The account's sign-in choices: password on or off, "ask for my
    /// passkey" on or off. What weakens the account needs a fresh proof;
    /// nothing may leave it without a way in. One compare-and-set.
    pub async fn set_choices(
        &self,
        current: &CurrentSession,
        password_on: bool,
        approve_with_passkey: bool,
        caller: &Caller,
    ) -> Result<AccountSettings, PasskeyError> {
        let account_id = current.account.id;
        let change = CredentialChange::Choices {
            password_on,
            approve_with_passkey,
        };
        loop {
            let credentials = self.credentials(account_id).await?;
            let next = change.apply(&credentials.state)?;
            if next == credentials.state {
                return Ok(credentials.settings);
            }
            self.require_proof(current, change, &credentials.state)
                .await?;
            let mut settings = credentials.settings.clone();
            settings.password_off = !next.password_on;
            settings.approve_with_passkey = next.approve_with_passkey;
            if self
                .settings
                .write_if_unchanged(account_id, &credentials.record, &settings)
                .await?
            {
                tracing::info!(
                    account_id,
                    password_on,
                    approve_with_passkey,
                    "sign-in choices changed"
                );
                self.audit.record(
                    AuditEvent::SignInChoicesChanged,
                    None,
                    Some(account_id),
                    caller,
                );
                return Ok(settings);
            }
        }
    }

    // ---- proving presence before a credential change ----

    /// What proves presence for this account now, and whether the session
    /// already has a fresh proof.
    pub async fn confirmation(&self, current: &CurrentSession) -> Result<Confirmation, StoreError> {
        let credentials = self.credentials(current.account.id).await?;
        let needed = credentials.state.proof_needed();
        let fresh_until = self
            .proofs(current)
            .await?
            .into_iter()
            .filter(|proof| proof.allows(needed, current.account.id, now_millis()))
            .map(|proof| proof.at + FRESH_PROOF_MS)
            .max();
        Ok(Confirmation {
            needed,
            fresh_until,
        })
    }

    /// Refuses `change` unless the session has a proof fresh enough and
    /// strong enough for it.
    async fn require_proof(
        &self,
        current: &CurrentSession,
        change: CredentialChange,
        state: &CredentialState,
    ) -> Result<(), PasskeyError> {
        let needed = change.proof_needed(state);
        match needed {
            ProofNeeded::None => return Ok(()),
            ProofNeeded::Impossible => return Err(PasskeyError::NoCredential),
            ProofNeeded::Passkey | ProofNeeded::Password => {}
        }
        let now = now_millis();
        let proofs = self.proofs(current).await?;
        if proofs
            .iter()
            .any(|proof| proof.allows(needed, current.account.id, now))
        {
            Ok(())
        } else {
            tracing::info!(
                account_id = current.account.id,
                ?change,
                "credential change without a fresh proof refused"
            );
            Err(PasskeyError::ConfirmFirst)
        }
    }

    /// The session's proofs: its sign-in itself (with a password or a
    /// passkey; a QR sign-in proves nothing of the device it went to), and
    /// the latest confirmation made in it.
    async fn proofs(&self, current: &CurrentSession) -> Result<Vec<Proof>, StoreError> {
        let session = &current.session;
        let signed_in_with = match session.method.as_str() {
            m if m == SignInMethod::Passkey.as_str() => Some(ProofKind::Passkey),
            m if m == SignInMethod::Password.as_str() => Some(ProofKind::Password),
            _ => None,
        };
        let mut proofs: Vec<Proof> = signed_in_with
            .map(|kind| Proof {
                account_id: current.account.id,
                kind,
                at: session.created_at,
            })
            .into_iter()
            .collect();
        let record = self
            .store
            .get(kinds::PROOF, &session.id, now_millis())
            .await?;
        proofs.extend(record.as_ref().and_then(parse::<Proof>));
        Ok(proofs)
    }

    /// Keeps `proof` as the session's latest (five minutes).
    async fn keep_proof(
        &self,
        current: &CurrentSession,
        kind: ProofKind,
        caller: &Caller,
    ) -> Result<(), PasskeyError> {
        let now = now_millis();
        let proof = Proof {
            account_id: current.account.id,
            kind,
            at: now,
        };
        let value = to_json(&proof)?;
        let key = &current.session.id;
        self.store.remove_key(kinds::PROOF, key).await?;
        match self
            .store
            .insert(kinds::PROOF, key, &value, now + FRESH_PROOF_MS, now)
            .await
        {
            // A racing confirmation of the same session stored its own.
            Ok(()) | Err(StoreError::Duplicate) => {}
            Err(e) => return Err(e.into()),
        }
        self.audit.record(
            AuditEvent::IdentityConfirmed,
            None,
            Some(current.account.id),
            caller,
        );
        Ok(())
    }

    /// Options for confirming with one of the account's passkeys (user
    /// verification required).
    pub async fn confirm_options(
        &self,
        current: &CurrentSession,
    ) -> Result<Ceremony<RequestChallengeResponse>, PasskeyError> {
        let webauthn = self.webauthn()?;
        let passkeys: Vec<Passkey> = self
            .stored(current.account.id)
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
        let ceremony = self
            .new_ceremony(&CeremonyState::Confirm {
                account_id: current.account.id,
                session_id: current.session.id.clone(),
                state,
            })
            .await?;
        Ok(Ceremony { ceremony, options })
    }

    /// Checks the assertion for a confirmation begun by this session, and
    /// keeps the proof.
    pub async fn confirm_with_passkey(
        &self,
        current: &CurrentSession,
        ceremony: &str,
        credential: &str,
        caller: &Caller,
    ) -> Result<(), PasskeyError> {
        let webauthn = self.webauthn()?;
        let credential: PublicKeyCredential = serde_json::from_str(credential)
            .map_err(|_| InvalidInput("the passkey's answer is not a WebAuthn assertion"))?;
        let CeremonyState::Confirm {
            account_id,
            session_id,
            state,
        } = self.take_ceremony(ceremony).await?
        else {
            return Err(PasskeyError::CeremonyGone);
        };
        if account_id != current.account.id || session_id != current.session.id {
            return Err(PasskeyError::CeremonyGone);
        }
        let result = webauthn
            .finish_passkey_authentication(&credential, &state)
            .map_err(|e| {
                tracing::info!(account_id, error = %e, "confirming passkey refused");
                PasskeyError::Refused
            })?;
        if !result.user_verified() {
            return Err(PasskeyError::Refused);
        }
        // Removed since the ceremony began: it proves nothing any more.
        let id = URL_SAFE_NO_PAD.encode(result.cred_id());
        let Some((key, _)) = self
            .stored(account_id)
            .await?
            .into_iter()
            .find(|(key, _)| credential_id(key) == id)
        else {
            return Err(PasskeyError::Refused);
        };
        self.used(&key, &result).await;
        self.keep_proof(current, ProofKind::Passkey, caller).await
    }

    /// Confirms with the password, for an account without a passkey (one
    /// with a passkey must use it).
    pub async fn confirm_with_password(
        &self,
        current: &CurrentSession,
        password: &str,
        caller: &Caller,
    ) -> Result<(), PasskeyError> {
        let credentials = self.credentials(current.account.id).await?;
        match credentials.state.proof_needed() {
            ProofNeeded::Password => {}
            ProofNeeded::Passkey => return Err(PasskeyError::Required),
            ProofNeeded::None | ProofNeeded::Impossible => return Err(PasskeyError::NoCredential),
        }
        match self
            .accounts
            .authenticate(current.account.username.as_str(), password, caller)
            .await
        {
            Ok(account) if account.id == current.account.id => {}
            Ok(_) | Err(AccountError::InvalidCredentials) => {
                return Err(PasskeyError::WrongPassword)
            }
            Err(AccountError::RateLimited(limited)) => return Err(limited.into()),
            Err(AccountError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(PasskeyError::Internal(e.to_string())),
        }
        self.keep_proof(current, ProofKind::Password, caller).await
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
        if self
            .settings
            .get(stored.account_id)
            .await?
            .was_removed(credential_id(&key))
        {
            return Err(PasskeyError::Refused);
        }
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
            .find(|(key, _)| credential_id(key) == id)
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
        if !self.store.remove_key(kinds::CEREMONY, id).await? {
            return Err(PasskeyError::CeremonyGone);
        }
        Ok(state)
    }

    // ---- the operator's account commands ----

    /// What removing the account takes with it here: its user handle, its
    /// passkeys (under the handle) and its settings.
    pub(crate) async fn account_records(
        &self,
        account_id: i64,
    ) -> Result<Vec<crate::storage::RecordSelector>, StoreError> {
        use crate::storage::{KeyMatch, RecordSelector};
        let id = account_id.to_string();
        let mut records = vec![
            RecordSelector {
                kind: kinds::USER,
                key: KeyMatch::Exact(id.clone()),
            },
            RecordSelector {
                kind: kinds::SETTINGS,
                key: KeyMatch::Exact(id),
            },
        ];
        if let Some(handle) = self.handle(account_id).await? {
            records.push(RecordSelector {
                kind: kinds::PASSKEY,
                key: KeyMatch::Prefix(format!("{handle}:")),
            });
        }
        Ok(records)
    }

    /// Password sign-in on again, whatever the account chose: for `qrlogin
    /// user reset`, where the operator vouches for the person.
    pub(crate) async fn turn_password_back_on(&self, account_id: i64) -> Result<(), PasskeyError> {
        self.settings
            .update(account_id, |s| s.password_off = false)
            .await?;
        Ok(())
    }

    // ---- invites: a first way in, with no session ----

    pub(crate) fn invite_store(&self) -> InviteStore {
        InviteStore::new(self.store.clone())
    }

    /// Password sign-in off for an account made for an invite: its
    /// password is random and unknown, and it has no way in until the
    /// invite is used.
    pub(crate) async fn password_off_until_enrolled(
        &self,
        account_id: i64,
    ) -> Result<(), PasskeyError> {
        self.settings
            .update(account_id, |s| s.password_off = true)
            .await?;
        Ok(())
    }

    /// Whether the account can sign in already (a passkey, or its
    /// password on): an enroll invite is then refused.
    pub(crate) async fn has_way_in(&self, account_id: i64) -> Result<bool, StoreError> {
        let state = self.credentials(account_id).await?.state;
        Ok(state.passkeys > 0 || state.password_on)
    }

    /// The live invite behind `token` and whom it sets up, for the invite
    /// page: each lookup counts against the address's guessing budget (the
    /// one typed device codes use). A phone link is claimed by the first
    /// phone that opens it (`claim`: the secret it holds, if any).
    pub async fn open_invite(
        &self,
        token: &str,
        claim: Option<&str>,
        caller: &Caller,
    ) -> Result<OpenedInvite, PasskeyError> {
        self.limits.user_code_ip.check(&ip_key(caller.ip)).await?;
        let Some((_, _, invite)) = self.invite_store().find_versioned(token).await? else {
            return Err(PasskeyError::InviteGone);
        };
        if invite.kind == InviteKind::Link {
            return self.open_link(token, claim, caller).await;
        }
        let (_, invite, invitee) = self.find_usable(token, None).await?;
        Ok(OpenedInvite {
            invitee,
            kind: invite.kind,
            link_number: None,
            new_claim: None,
        })
    }

    /// [`Self::find_usable`], counted against the address's budget.
    async fn usable_invite(
        &self,
        token: &str,
        claim: Option<&str>,
        caller: &Caller,
    ) -> Result<(String, Invite, Invitee), PasskeyError> {
        self.limits.user_code_ip.check(&ip_key(caller.ip)).await?;
        self.find_usable(token, claim).await
    }

    /// The invite's record key, the invite and whom it sets up;
    /// `InviteGone` for an unknown, used, revoked or expired one, one of a
    /// removed or disabled account, an enroll invite whose account has a
    /// way in, or a phone link not matched for the phone holding `claim`.
    async fn find_usable(
        &self,
        token: &str,
        claim: Option<&str>,
    ) -> Result<(String, Invite, Invitee), PasskeyError> {
        let Some((key, invite)) = self.invite_store().find(token).await? else {
            return Err(PasskeyError::InviteGone);
        };
        match invite.kind {
            InviteKind::Join => {
                if self.registration != Registration::Open {
                    return Err(PasskeyError::RegistrationClosed);
                }
                let new = invite.join.clone().ok_or(PasskeyError::InviteGone)?;
                return Ok((key, invite, Invitee::New(new)));
            }
            InviteKind::Link => {
                let ready = invite
                    .link
                    .as_ref()
                    .is_some_and(|link| link.matched && links::holds_claim(link, claim));
                if !ready {
                    return Err(PasskeyError::InviteGone);
                }
            }
            InviteKind::Enroll | InviteKind::Reset | InviteKind::Setup => {}
        }
        let Some(account) = self.accounts.account_by_id(invite.account_id).await? else {
            return Err(PasskeyError::InviteGone);
        };
        if invite.kind == InviteKind::Enroll && self.has_way_in(account.id).await? {
            tracing::info!(account = %account.username, "enroll invite refused: the account has a way in");
            return Err(PasskeyError::InviteGone);
        }
        Ok((key, invite, Invitee::Account(account)))
    }

    /// Starts creating a passkey for the invite's account (no session: the
    /// invite is the authority). `claim`: a phone link's claiming secret.
    pub async fn start_enrollment(
        &self,
        token: &str,
        claim: Option<&str>,
        caller: &Caller,
    ) -> Result<Ceremony<CreationChallengeResponse>, PasskeyError> {
        let webauthn = self.webauthn()?;
        let (key, _, invitee) = self.usable_invite(token, claim, caller).await?;
        let (options, state) = match &invitee {
            Invitee::Account(account) => {
                let existing = self.stored(account.id).await?;
                self.registration_options(webauthn, account, &existing)
                    .await?
            }
            Invitee::New(new) => creation_options(
                webauthn,
                new.handle,
                &new.username,
                &new.display_name,
                Vec::new(),
            )?,
        };
        let ceremony = self
            .new_ceremony(&CeremonyState::Enroll {
                account_id: invitee.id(),
                invite: key,
                state,
            })
            .await?;
        Ok(Ceremony { ceremony, options })
    }

    /// Verifies the new credential, uses the invite up, keeps the passkey
    /// and signs the account in: the session's token and the account.
    /// The invite is taken (removed by its exact key) before anything is
    /// kept, so of two racing uses exactly one adds a passkey.
    pub async fn finish_enrollment(
        &self,
        token: &str,
        claim: Option<&str>,
        ceremony: &str,
        name: &str,
        credential: &str,
        caller: &Caller,
    ) -> Result<(Secret, Account), PasskeyError> {
        let webauthn = self.webauthn()?;
        let name = PasskeyName::parse(name)?;
        let credential: RegisterPublicKeyCredential = serde_json::from_str(credential)
            .map_err(|_| InvalidInput("the passkey's answer is not a WebAuthn credential"))?;
        let CeremonyState::Enroll {
            account_id,
            invite: begun_with,
            state,
        } = self.take_ceremony(ceremony).await?
        else {
            return Err(PasskeyError::CeremonyGone);
        };
        let (key, invite, invitee) = self.usable_invite(token, claim, caller).await?;
        // The ceremony was begun with this very invite.
        if key != begun_with || invitee.id() != account_id {
            return Err(PasskeyError::CeremonyGone);
        }
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::debug!(error = %e, "enrollment passkey refused");
                PasskeyError::Refused
            })?;
        if !self.invite_store().take(&key).await? {
            return Err(PasskeyError::InviteGone);
        }
        let account = match invitee {
            Invitee::Account(account) => account,
            Invitee::New(new) => self.make_joined_account(&new, None).await?,
        };
        self.keep_passkey(account.id, &name, passkey, caller)
            .await?;
        self.invite_used(&account, invite.kind, caller).await?;
        let token = self
            .accounts
            .start_session(&account, SignInMethod::Passkey, caller)
            .await?;
        Ok((token, account))
    }

    /// Records an invite's use; a setup link makes its account an
    /// administrator.
    async fn invite_used(
        &self,
        account: &Account,
        kind: InviteKind,
        caller: &Caller,
    ) -> Result<(), PasskeyError> {
        if kind == InviteKind::Setup {
            self.accounts
                .set_admin(account, true, caller)
                .await
                .map_err(|e| match e {
                    AccountError::Store(e) => PasskeyError::Store(e),
                    e => PasskeyError::Internal(e.to_string()),
                })?;
        }
        let event = match kind {
            InviteKind::Link => AuditEvent::PhoneLinked,
            InviteKind::Join => AuditEvent::AccountJoined,
            InviteKind::Enroll | InviteKind::Reset | InviteKind::Setup => AuditEvent::InviteUsed,
        };
        tracing::info!(account = %account.username, kind = kind.as_str(), "invite used");
        self.audit.record(event, None, Some(account.id), caller);
        Ok(())
    }

    /// Where passkeys are off (an IP address as public URL): the invite
    /// sets the account's password and turns password sign-in on, then
    /// signs it in. The password is checked before the invite is taken,
    /// so a too-short one does not use it up. (A phone link needs
    /// passkeys: it is never made here.)
    pub async fn enroll_with_password(
        &self,
        token: &str,
        password: &str,
        caller: &Caller,
    ) -> Result<(Secret, Account), PasskeyError> {
        if self.available() {
            return Err(InvalidInput("this server sets accounts up with a passkey").into());
        }
        Password::parse(password)?;
        let (key, invite, invitee) = self.usable_invite(token, None, caller).await?;
        if !self.invite_store().take(&key).await? {
            return Err(PasskeyError::InviteGone);
        }
        let account = match invitee {
            Invitee::New(new) => self.make_joined_account(&new, Some(password)).await?,
            Invitee::Account(account) => {
                match self
                    .accounts
                    .set_password(&account.username, password)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return Err(PasskeyError::InviteGone),
                    Err(AccountError::InvalidInput(e)) => return Err(e.into()),
                    Err(AccountError::Store(e)) => return Err(e.into()),
                    Err(e) => return Err(PasskeyError::Internal(e.to_string())),
                }
                self.settings
                    .update(account.id, |s| s.password_off = false)
                    .await?;
                account
            }
        };
        self.invite_used(&account, invite.kind, caller).await?;
        let token = self
            .accounts
            .start_session(&account, SignInMethod::Password, caller)
            .await?;
        Ok((token, account))
    }
}

/// What [`PasskeyService::credentials`] reads, for one decision.
struct Credentials {
    record: Option<ProviderRecord>,
    settings: AccountSettings,
    passkeys: Vec<(String, StoredPasskey)>,
    state: CredentialState,
}

/// How this account proves presence, and until when its session's latest
/// proof lets changes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    pub needed: ProofNeeded,
    pub fresh_until: Option<UnixMillis>,
}

/// Creation options for a passkey of the account with `handle`, none of
/// `exclude`, and the state that verifies the answer.
fn creation_options(
    webauthn: &Webauthn,
    handle: Uuid,
    username: &str,
    display_name: &str,
    exclude: Vec<webauthn_rs::prelude::CredentialID>,
) -> Result<(CreationChallengeResponse, PasskeyRegistration), PasskeyError> {
    let (mut options, state) = webauthn
        .start_passkey_registration(handle, username, display_name, Some(exclude))
        .map_err(|e| PasskeyError::Internal(e.to_string()))?;
    // Ask for a discoverable credential, so that signing in needs no
    // username; the verification does not depend on it.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = true;
        selection.resident_key = Some(ResidentKeyRequirement::Required);
    }
    Ok((options, state))
}

/// The credential id part of a passkey record's key (`{handle}:{id}`).
fn credential_id(key: &str) -> &str {
    key.rsplit(':').next().unwrap_or_default()
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

/// What the administrators' service asks of passkeys.
impl PasskeyService {
    /// The shared record store (admin API tokens live there too).
    pub(crate) fn provider_store(&self) -> Arc<dyn ProviderStore> {
        self.store.clone()
    }

    /// The rate limits (a failed admin token counts as a failed bearer).
    pub(crate) fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Refuses an administrator's change unless their session holds a
    /// fresh proof of presence (the same one a credential change needs):
    /// a stolen admin session alone cannot change other accounts.
    pub async fn require_fresh_proof(&self, current: &CurrentSession) -> Result<(), PasskeyError> {
        let credentials = self.credentials(current.account.id).await?;
        // Removing a passkey needs the strongest proof the account has.
        self.require_proof(current, CredentialChange::RemovePasskey, &credentials.state)
            .await
    }

    /// Removes the chosen passkeys of `account_id` (`None`: all of them)
    /// for an administrator, with no proof of the owner's (the owner lost
    /// the phone). With `keep_a_way_in`, refused (`LastWayIn`) when the
    /// account would have no way to sign in left; a reset, which issues an
    /// invite, passes false. One compare-and-set on the settings marks
    /// them removed, then the records go. Returns the ids removed.
    pub async fn remove_for_admin(
        &self,
        account_id: i64,
        ids: Option<&[String]>,
        keep_a_way_in: bool,
        caller: &Caller,
    ) -> Result<Vec<String>, PasskeyError> {
        let (keys, removed) = loop {
            let credentials = self.credentials(account_id).await?;
            let chosen: Vec<(String, StoredPasskey)> = match ids {
                None => credentials.passkeys.clone(),
                Some(ids) => {
                    let mut chosen = Vec::new();
                    for id in ids {
                        let Some(found) = credentials
                            .passkeys
                            .iter()
                            .find(|(key, _)| credential_id(key) == id)
                        else {
                            return Err(PasskeyError::NotFound);
                        };
                        if !chosen.iter().any(|(key, _)| key == &found.0) {
                            chosen.push(found.clone());
                        }
                    }
                    chosen
                }
            };
            if chosen.is_empty() {
                return Ok(Vec::new());
            }
            let left = credentials.passkeys.len() - chosen.len();
            if keep_a_way_in && left == 0 && !credentials.state.password_on {
                return Err(PasskeyError::LastWayIn);
            }
            let mut settings = credentials.settings.clone();
            settings.approve_with_passkey = settings.approve_with_passkey && left > 0;
            let now = now_millis();
            for (key, stored) in &chosen {
                settings.removed.push(RemovedPasskey {
                    id: credential_id(key).to_owned(),
                    name: stored.name.clone(),
                    removed_at: now,
                });
            }
            let excess = settings.removed.len().saturating_sub(MAX_REMOVED);
            settings.removed.drain(..excess);
            if self
                .settings
                .write_if_unchanged(account_id, &credentials.record, &settings)
                .await?
            {
                let ids = chosen
                    .iter()
                    .map(|(key, _)| credential_id(key).to_owned())
                    .collect::<Vec<_>>();
                break (
                    chosen.into_iter().map(|(key, _)| key).collect::<Vec<_>>(),
                    ids,
                );
            }
        };
        for (key, id) in keys.iter().zip(&removed) {
            if let Err(err) = self.store.remove_key(kinds::PASSKEY, key).await {
                tracing::warn!(account_id, passkey = %id, error = %err, "removed passkey's record stays (ignored)");
            }
            tracing::info!(account_id, passkey = %id, "passkey removed by an administrator");
            self.audit
                .record(AuditEvent::PasskeyRemoved, None, Some(account_id), caller);
        }
        Ok(removed)
    }
}
