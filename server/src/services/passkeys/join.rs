//! Open sign-up (`--registration open`): anyone chooses a username and a
//! display name on `/join` and gets a short-lived invite of kind `join`
//! for an account that does not exist yet; the invite page then creates
//! its passkey (or, where passkeys are off, sets its password), and only
//! that makes the account. An abandoned sign-up leaves nothing behind and
//! holds no name. Rate-limited per client address.

use webauthn_rs::prelude::Uuid;

use super::{kinds, to_json, PasskeyError, PasskeyService, UserHandle, FOREVER};
use crate::{
    domain::{
        account::{Account, DisplayName, Username},
        caller::Caller,
        secret::Secret,
        time::{now_millis, UnixMillis},
    },
    services::{
        accounts::AccountError,
        invites::{Invite, InviteKind, NewAccount, Registration},
        limits::ip_key,
    },
};

/// How long a sign-up has to create its passkey.
pub const JOIN_VALID_MS: UnixMillis = 15 * 60 * 1000;

impl PasskeyService {
    /// Begins a sign-up: checks the names (as `qrlogin user add` does) and
    /// that the username is free, and returns the token of a `join` invite
    /// whose page finishes it. Refused with `RegistrationClosed` unless
    /// registration is open; counted against the address's hourly budget.
    pub async fn start_join(
        &self,
        username: &str,
        display_name: &str,
        caller: &Caller,
    ) -> Result<Secret, PasskeyError> {
        if self.registration != Registration::Open {
            return Err(PasskeyError::RegistrationClosed);
        }
        let username = Username::parse(username)?;
        let display_name = match display_name.trim() {
            "" => DisplayName::parse(username.as_str())?,
            name => DisplayName::parse(name)?,
        };
        self.limits.join_ip.check(&ip_key(caller.ip)).await?;
        match self.accounts.account_named(username.as_str()).await {
            Ok(_) => return Err(PasskeyError::UsernameTaken(username.to_string())),
            Err(AccountError::NoSuchAccount(_)) => {}
            Err(AccountError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(PasskeyError::Internal(e.to_string())),
        }
        let now = now_millis();
        let invite = Invite {
            account_id: 0,
            kind: InviteKind::Join,
            created_at: now,
            expires_at: now + JOIN_VALID_MS,
            link: None,
            join: Some(NewAccount {
                username: username.to_string(),
                display_name: display_name.as_str().to_owned(),
                handle: Uuid::new_v4(),
            }),
        };
        let token = Secret::new_random();
        self.invite_store().insert(&token, &invite).await?;
        tracing::info!(username = %username, "sign-up begun");
        Ok(token)
    }

    /// Makes a sign-up's account as its credential is kept: with
    /// `password` (passkeys off), else with no password and the passkey's
    /// user handle. A name taken since the sign-up began is refused.
    pub(super) async fn make_joined_account(
        &self,
        new: &NewAccount,
        password: Option<&str>,
    ) -> Result<Account, PasskeyError> {
        // Never shown, never stored but hashed: the passkey is the way in.
        let unusable = Secret::new_random().encode();
        let account = self
            .accounts
            .add_account(
                &new.username,
                Some(&new.display_name),
                password.unwrap_or(&unusable),
                now_millis(),
            )
            .await
            .map_err(|e| match e {
                AccountError::UsernameTaken(name) => PasskeyError::UsernameTaken(name),
                AccountError::InvalidInput(e) => e.into(),
                AccountError::Store(e) => e.into(),
                e => PasskeyError::Internal(e.to_string()),
            })?;
        if password.is_none() {
            self.password_off_until_enrolled(account.id).await?;
            let value = to_json(&UserHandle { handle: new.handle })?;
            self.store
                .insert(
                    kinds::USER,
                    &account.id.to_string(),
                    &value,
                    FOREVER,
                    now_millis(),
                )
                .await?;
        }
        tracing::info!(account = %account.username, "account made by sign-up");
        Ok(account)
    }
}
