//! "Add another phone": a signed-in phone (with the fresh proof a new
//! passkey needs) shows a one-time link as a QR, valid five minutes and
//! bound to its account and session. The first phone to open the link
//! claims it (a secret it keeps in a cookie) and shows a two-digit
//! number; the first phone picks that number among three. Only then may
//! the claiming phone create its own passkey on the account (the invite
//! page's usual enrollment). A wrong pick ends the link; a second phone
//! opening it is refused; a phone that cannot see the first phone's
//! screen does not know which number it shows.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use super::{OpenedInvite, PasskeyError, PasskeyService, MAX_PASSKEYS};
use crate::{
    domain::{
        attempt::match_choices,
        audit::AuditEvent,
        caller::Caller,
        credentials::CredentialChange,
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    services::{
        accounts::CurrentSession,
        invites::{Invite, InviteKind, LinkState},
    },
};

/// How long a phone link works.
pub const LINK_VALID_MS: UnixMillis = 5 * 60 * 1000;

/// What the first phone's `/m/link` page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProgress {
    /// Nobody has opened the link yet: show its QR.
    Waiting,
    /// A phone opened it: pick the number it shows.
    Scanned { choices: [u8; 3] },
    /// The right number was picked: the other phone is creating its passkey.
    Matched,
}

/// A claiming secret's hash, as the link keeps it.
fn claim_hash(secret: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(secret.hash().0)
}

/// Whether `claim` is the secret of the phone that claimed `link`.
pub(super) fn holds_claim(link: &LinkState, claim: Option<&str>) -> bool {
    match (&link.claim, claim.and_then(Secret::decode)) {
        (Some(kept), Some(secret)) => *kept == claim_hash(&secret),
        _ => false,
    }
}

impl PasskeyService {
    /// Makes a phone link for the signed-in account: its token (shown as a
    /// QR, this once) and the invite. Needs passkeys here, and a fresh
    /// proof, as adding a passkey does.
    pub async fn start_link(
        &self,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<(Secret, Invite), PasskeyError> {
        self.start_link_valid_for(current, LINK_VALID_MS, caller)
            .await
    }

    /// [`Self::start_link`], valid `valid_ms` (tests make short ones).
    pub async fn start_link_valid_for(
        &self,
        current: &CurrentSession,
        valid_ms: UnixMillis,
        caller: &Caller,
    ) -> Result<(Secret, Invite), PasskeyError> {
        self.webauthn()?;
        let account_id = current.account.id;
        let credentials = self.credentials(account_id).await?;
        self.require_proof(current, CredentialChange::AddPasskey, &credentials.state)
            .await?;
        if credentials.passkeys.len() >= MAX_PASSKEYS {
            return Err(PasskeyError::TooMany);
        }
        let now = now_millis();
        let invite = Invite {
            account_id,
            kind: InviteKind::Link,
            created_at: now,
            expires_at: now.saturating_add(valid_ms),
            link: Some(LinkState {
                session_id: current.session.id.clone(),
                claim: None,
                match_code: None,
                choices: None,
                matched: false,
            }),
            join: None,
        };
        let token = Secret::new_random();
        self.invite_store().insert(&token, &invite).await?;
        tracing::info!(account_id, "phone link created");
        self.audit
            .record(AuditEvent::PhoneLinkCreated, None, Some(account_id), caller);
        Ok((token, invite))
    }

    /// The link `token` of this very session (`InviteGone` for any other,
    /// or one ended, used or expired), with its record key and version.
    async fn own_link(
        &self,
        current: &CurrentSession,
        token: &str,
    ) -> Result<(String, i64, Invite, LinkState), PasskeyError> {
        let found = self.invite_store().find_versioned(token).await?;
        let Some((key, version, invite)) = found else {
            return Err(PasskeyError::InviteGone);
        };
        match invite.link.clone() {
            Some(link)
                if invite.kind == InviteKind::Link
                    && invite.account_id == current.account.id
                    && link.session_id == current.session.id =>
            {
                Ok((key, version, invite, link))
            }
            _ => Err(PasskeyError::InviteGone),
        }
    }

    /// Where the first phone's link stands.
    pub async fn link_progress(
        &self,
        current: &CurrentSession,
        token: &str,
    ) -> Result<LinkProgress, PasskeyError> {
        let (_, _, _, link) = self.own_link(current, token).await?;
        Ok(match (link.matched, link.choices) {
            (true, _) => LinkProgress::Matched,
            (false, Some(choices)) => LinkProgress::Scanned { choices },
            (false, None) => LinkProgress::Waiting,
        })
    }

    /// The first phone picks the number the other phone shows: the right
    /// one lets that phone enroll (true); any other ends the link (false).
    /// One pick, decided by compare-and-set.
    pub async fn pick_link_number(
        &self,
        current: &CurrentSession,
        token: &str,
        number: u8,
        caller: &Caller,
    ) -> Result<bool, PasskeyError> {
        let store = self.invite_store();
        loop {
            let (key, version, mut invite, mut link) = self.own_link(current, token).await?;
            if link.matched {
                return Ok(true);
            }
            let Some(match_code) = link.match_code else {
                return Err(crate::domain::account::InvalidInput(
                    "no phone has opened this code yet",
                )
                .into());
            };
            if number != match_code {
                if store.take(&key).await? {
                    tracing::info!(
                        account_id = current.account.id,
                        "phone link ended: wrong number"
                    );
                    self.audit.record(
                        AuditEvent::PhoneLinkRefused,
                        None,
                        Some(current.account.id),
                        caller,
                    );
                }
                return Ok(false);
            }
            link.matched = true;
            invite.link = Some(link);
            if store.replace(&key, version, &invite).await? {
                return Ok(true);
            }
        }
    }

    /// The invite page for a phone link: the first phone to open it claims
    /// it (a new secret, for its cookie) and is shown the number; that
    /// phone again sees the number, or, once it was picked, may enroll; any
    /// other phone is refused.
    pub(super) async fn open_link(
        &self,
        token: &str,
        claim: Option<&str>,
        caller: &Caller,
    ) -> Result<OpenedInvite, PasskeyError> {
        let store = self.invite_store();
        loop {
            let Some((key, version, mut invite)) = store.find_versioned(token).await? else {
                return Err(PasskeyError::InviteGone);
            };
            let Some(mut link) = invite.link.clone() else {
                return Err(PasskeyError::InviteGone);
            };
            let Some(account) = self.accounts.account_by_id(invite.account_id).await? else {
                return Err(PasskeyError::InviteGone);
            };
            let opened = |link_number, new_claim| OpenedInvite {
                invitee: super::Invitee::Account(account.clone()),
                kind: InviteKind::Link,
                link_number,
                new_claim,
            };
            if link.claim.is_some() {
                if !holds_claim(&link, claim) {
                    tracing::info!(account = %account.username, "phone link opened by a second phone: refused");
                    return Err(PasskeyError::InviteGone);
                }
                let number = (!link.matched).then_some(link.match_code).flatten();
                return Ok(opened(number, None));
            }
            let secret = Secret::new_random();
            let (match_code, choices) = match_choices();
            link.claim = Some(claim_hash(&secret));
            link.match_code = Some(match_code);
            link.choices = Some(choices);
            invite.link = Some(link);
            if store.replace(&key, version, &invite).await? {
                tracing::info!(account = %account.username, ip = %caller.ip_string(), "phone link opened");
                return Ok(opened(Some(match_code), Some(secret)));
            }
        }
    }
}
