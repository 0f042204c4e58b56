//! Invites: a one-time link `{public_url}/invite/{token}` that lets one
//! person set up one account (a passkey, or a password where passkeys are
//! off) with no session and no password handed over. The operator makes
//! it (`qrlogin user invite`); the admin console will call the same code.
//!
//! Only the token's hash is stored (a record of the shared record store,
//! key = the hash), so a copy of the database lets nobody in. A record
//! lives until its expiry; using it removes it by its exact key, so of two
//! racing uses exactly one wins, on any instance.

use std::sync::Arc;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde::{Deserialize, Serialize};

use super::{accounts::AccountError, passkeys::PasskeyError, AccountAdminError, Services};
use crate::{
    domain::{
        account::{Account, InvalidInput},
        audit::AuditEvent,
        caller::Caller,
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    storage::{parse_record as parse, ProviderStore, StoreError},
};

/// The record kind, as the store names it: `{token hash}` → an [`Invite`].
const KIND: &str = "invite";
/// How long an invite is valid unless the operator says otherwise.
pub const DEFAULT_VALID_HOURS: u64 = 72;
/// No invite outlives a month: a forgotten link should not stay a way in.
pub const MAX_VALID_HOURS: u64 = 24 * 31;

/// What an invite lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InviteKind {
    /// Set up an account that has no way in yet (no passkey, password off).
    Enroll,
    /// Add a way in to an account that has one (a lost phone): the
    /// operator vouches for the person.
    Reset,
    /// The setup link `serve` prints while no administrator can sign in:
    /// enrolls its account and makes it an administrator.
    Setup,
    /// "Add another phone": a signed-in phone's own account, for a second
    /// phone that scans it and whose number the first phone picks.
    Link,
    /// An open sign-up: the account is made only when its passkey (or
    /// password) is, from [`Invite::join`].
    Join,
}

impl InviteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enroll => "enroll",
            Self::Reset => "reset",
            Self::Setup => "setup",
            Self::Link => "link",
            Self::Join => "join",
        }
    }
}

/// An invite as stored (under its token's hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub account_id: i64,
    pub kind: InviteKind,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    /// A link invite's progress (kind `link` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkState>,
    /// The account a sign-up makes (kind `join` only; `account_id` is 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<NewAccount>,
}

/// How far a phone link got. The phone that opens the link first claims
/// it (it holds a secret whose hash is kept here) and is shown the number;
/// the session that made the link picks it among three. One pick: a wrong
/// one removes the link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// The session that made it: the only one that sees its code and picks.
    pub session_id: String,
    /// The claiming phone's secret, hashed (base64url).
    pub claim: Option<String>,
    pub match_code: Option<u8>,
    pub choices: Option<[u8; 3]>,
    /// The right number was picked: the claiming phone may enroll.
    pub matched: bool,
}

/// The account an open sign-up asks for, made when its credential is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    /// The WebAuthn user handle its passkey is made for.
    pub handle: webauthn_rs::prelude::Uuid,
}

/// Who may make their own account: `invite` (the default: an
/// administrator invites) or `open` (anyone, on `/join`, rate-limited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    #[default]
    Invite,
    Open,
}

impl std::str::FromStr for Registration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "invite" => Ok(Self::Invite),
            "open" => Ok(Self::Open),
            other => Err(format!("{other:?}: expected invite or open")),
        }
    }
}

/// A live invite as `qrlogin user invites` lists it (never its token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveInvite {
    pub username: String,
    pub invite: Invite,
}

/// An invite just made: the token is shown this once.
pub struct NewInvite {
    pub token: Secret,
    pub account: Account,
    pub invite: Invite,
    /// The account was made for this invite.
    pub created_account: bool,
}

/// How long the setup link works.
pub const SETUP_VALID_MS: UnixMillis = 24 * 3_600_000;
/// The display name of an administrator account made for a setup link.
const SETUP_DISPLAY_NAME: &str = "Administrator";

/// A setup link just made: the token is shown this once.
pub struct SetupLink {
    pub made: NewInvite,
    /// Older live setup links it replaced (revoked).
    pub revoked: usize,
}

/// The record key of a token: its hash (base64url).
pub(crate) fn key_of(token: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(token.hash().0)
}

/// The invites' records.
#[derive(Clone)]
pub struct InviteStore(Arc<dyn ProviderStore>);

impl InviteStore {
    pub fn new(store: Arc<dyn ProviderStore>) -> Self {
        Self(store)
    }

    pub(crate) async fn insert(&self, token: &Secret, invite: &Invite) -> Result<(), PasskeyError> {
        let value =
            serde_json::to_string(invite).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        Ok(self
            .0
            .insert(
                KIND,
                &key_of(token),
                &value,
                invite.expires_at,
                invite.created_at,
            )
            .await?)
    }

    /// The live invite behind `token` (`None`: unknown, used, revoked or
    /// expired: the store keeps nothing to tell these apart).
    pub async fn find(&self, token: &str) -> Result<Option<(String, Invite)>, StoreError> {
        let Some(token) = Secret::decode(token) else {
            return Ok(None);
        };
        let key = key_of(&token);
        let record = self.0.get(KIND, &key, now_millis()).await?;
        Ok(record.as_ref().and_then(parse).map(|invite| (key, invite)))
    }

    /// As [`Self::find`], with the record's version (for [`Self::replace`]).
    pub(crate) async fn find_versioned(
        &self,
        token: &str,
    ) -> Result<Option<(String, i64, Invite)>, StoreError> {
        let Some(token) = Secret::decode(token) else {
            return Ok(None);
        };
        let key = key_of(&token);
        let record = self.0.get(KIND, &key, now_millis()).await?;
        Ok(record
            .as_ref()
            .and_then(|r| Some((key, r.version, parse::<Invite>(r)?))))
    }

    /// Stores `invite` only if its record is live and still at `version`.
    pub(crate) async fn replace(
        &self,
        key: &str,
        version: i64,
        invite: &Invite,
    ) -> Result<bool, PasskeyError> {
        let value =
            serde_json::to_string(invite).map_err(|e| PasskeyError::Internal(e.to_string()))?;
        Ok(self
            .0
            .replace(KIND, key, version, &value, invite.expires_at, now_millis())
            .await?)
    }

    /// Uses the invite up: true for the one caller that removed it.
    pub async fn take(&self, key: &str) -> Result<bool, StoreError> {
        self.0.remove_key(KIND, key).await
    }

    /// Every live invite, with its record key.
    async fn live(&self) -> Result<Vec<(String, Invite)>, StoreError> {
        Ok(self
            .0
            .list(KIND, "", now_millis())
            .await?
            .into_iter()
            .filter_map(|(key, record)| Some((key, parse::<Invite>(&record)?)))
            .collect())
    }
}

/// The operator's side: make, list and revoke invites.
impl Services {
    fn invite_store(&self) -> InviteStore {
        self.passkeys.invite_store()
    }

    /// Makes an invite for `username`, valid `valid_ms`. An enroll invite
    /// creates the account when there is none (with an unguessable
    /// password nobody knows and password sign-in off, so that it has no
    /// way in until the invite is used), and is refused for an account
    /// that already has a way in: that needs a reset invite.
    pub async fn invite(
        &self,
        username: &str,
        display_name: Option<&str>,
        kind: InviteKind,
        valid_ms: UnixMillis,
        caller: &Caller,
    ) -> Result<NewInvite, AccountAdminError> {
        let accounts = &self.accounts;
        let (account, created_account) = match accounts.account_named(username).await {
            Ok(account) => (account, false),
            Err(AccountError::NoSuchAccount(_))
                if matches!(kind, InviteKind::Enroll | InviteKind::Setup) =>
            {
                // Never shown, never stored but hashed: no way in.
                let unusable = Secret::new_random().encode();
                let account = accounts
                    .add_account(username, display_name, &unusable, now_millis())
                    .await?;
                self.passkeys
                    .password_off_until_enrolled(account.id)
                    .await?;
                (account, true)
            }
            Err(e) => return Err(e.into()),
        };
        if kind == InviteKind::Enroll && self.passkeys.has_way_in(account.id).await? {
            return Err(AccountError::InvalidInput(InvalidInput(
                "this account can already sign in: give it a reset invite (--reset)",
            ))
            .into());
        }
        let now = now_millis();
        let invite = Invite {
            account_id: account.id,
            kind,
            created_at: now,
            expires_at: now.saturating_add(valid_ms),
            link: None,
            join: None,
        };
        let token = Secret::new_random();
        self.invite_store().insert(&token, &invite).await?;
        tracing::info!(account = %account.username, kind = kind.as_str(), "invite created");
        let event = match kind {
            InviteKind::Setup => AuditEvent::SetupLinkCreated,
            _ => AuditEvent::InviteCreated,
        };
        self.audit.record(event, None, Some(account.id), caller);
        Ok(NewInvite {
            token,
            account,
            invite,
            created_account,
        })
    }

    /// Whether some enabled administrator can sign in (a passkey, or its
    /// password on).
    pub async fn admin_can_sign_in(&self) -> Result<bool, AccountAdminError> {
        for account in self.accounts.list_accounts().await? {
            if account.admin && !account.disabled && self.passkeys.has_way_in(account.id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What `serve` runs at start: while no enabled administrator can sign
    /// in, a new setup link (24 h) for `username` (made if missing, with no
    /// way in until the link is used), every older live setup link revoked;
    /// `None` when an administrator can sign in.
    pub async fn setup_link(
        &self,
        username: &str,
        caller: &Caller,
    ) -> Result<Option<SetupLink>, AccountAdminError> {
        if self.admin_can_sign_in().await? {
            return Ok(None);
        }
        let store = self.invite_store();
        let mut revoked = 0;
        for (key, invite) in store.live().await? {
            if invite.kind == InviteKind::Setup && store.take(&key).await? {
                revoked += 1;
                self.audit.record(
                    AuditEvent::InviteRevoked,
                    None,
                    Some(invite.account_id),
                    caller,
                );
            }
        }
        if let Ok(account) = self.accounts.account_named(username).await {
            if account.disabled {
                return Err(AccountError::InvalidInput(InvalidInput(
                    "the setup account is disabled: enable it (qrlogin user enable) or choose another with --setup-admin",
                ))
                .into());
            }
        }
        let made = self
            .invite(
                username,
                Some(SETUP_DISPLAY_NAME),
                InviteKind::Setup,
                SETUP_VALID_MS,
                caller,
            )
            .await?;
        Ok(Some(SetupLink { made, revoked }))
    }

    /// The live invites, soonest to expire first.
    pub async fn invites(&self) -> Result<Vec<LiveInvite>, AccountAdminError> {
        let mut list = Vec::new();
        for (_, invite) in self.invite_store().live().await? {
            // An invite of a removed account leads nowhere: not listed.
            if let Some(account) = self.accounts.account_by_id(invite.account_id).await? {
                list.push(LiveInvite {
                    username: account.username,
                    invite,
                });
            }
        }
        list.sort_by_key(|live| live.invite.expires_at);
        Ok(list)
    }

    /// Revokes every live invite of `username`; how many there were.
    pub async fn uninvite(
        &self,
        username: &str,
        caller: &Caller,
    ) -> Result<usize, AccountAdminError> {
        let account = self.accounts.account_named(username).await?;
        let store = self.invite_store();
        let mut revoked = 0;
        for (key, invite) in store.live().await? {
            if invite.account_id == account.id && store.take(&key).await? {
                revoked += 1;
            }
        }
        if revoked > 0 {
            tracing::info!(account = %account.username, revoked, "invites revoked");
            self.audit
                .record(AuditEvent::InviteRevoked, None, Some(account.id), caller);
        }
        Ok(revoked)
    }
}
