//! What the audit trail records: every attempt event and every sign-in and
//! sign-out, with time, address, browser and account.

use app::api::LoginState;

use super::{
    attempt::{Attempt, LoginId},
    caller::Caller,
    time::UnixMillis,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    LoginCreated,
    LoginScanned,
    LoginApproved,
    LoginDenied,
    LoginRedeemed,
    LoginCancelled,
    LoginExpired,
    SignedIn,
    SignInFailed,
    SignedOut,
    SessionRevoked,
    /// An OpenID Connect client was given a code for the account.
    AppSignedIn,
    DeviceApproved,
    DeviceDenied,
    /// A client's grant was revoked: a code used twice, a refresh token
    /// replayed, a revocation request, or consent withdrawn on `/m`.
    AppGrantRevoked,
    /// A passkey was added to the account.
    PasskeyAdded,
    /// A passkey was removed from the account.
    PasskeyRemoved,
    /// The password was turned on or off, or "ask for my passkey" changed.
    SignInChoicesChanged,
    /// The owner proved presence (passkey or password) before a change to
    /// the account's credentials.
    IdentityConfirmed,
    /// The operator removed the account (`qrlogin user remove`).
    AccountRemoved,
    /// The operator reset the account (`qrlogin user reset`): a new
    /// password, every session ended.
    AccountReset,
    /// The account was disabled (`qrlogin user disable`): every session
    /// ended, its apps' grants revoked, signing in refused.
    AccountDisabled,
    /// The account was enabled again (`qrlogin user enable`).
    AccountEnabled,
    /// The account was made an administrator.
    AdminGranted,
    /// The account stopped being an administrator.
    AdminRevoked,
    /// An invite to set up the account was made (`qrlogin user invite`).
    InviteCreated,
    /// An invite was used: a passkey or password set, a session started.
    InviteUsed,
    /// The account's live invites were revoked (`qrlogin user uninvite`).
    InviteRevoked,
    /// An administrator made the account (with an invite).
    AccountCreated,
    /// An OpenID Connect client was registered.
    AppAdded,
    /// A confidential client was given a new secret (the old one stops).
    AppSecretRotated,
    /// An OpenID Connect client was removed, with its grants.
    AppRemoved,
    /// An admin API token was made (`qrlogin token add`).
    AdminTokenAdded,
    /// An admin API token was revoked.
    AdminTokenRevoked,
    /// `serve` printed a setup link for the account (no administrator could
    /// sign in); using it is `invite_used`.
    SetupLinkCreated,
    /// A signed-in phone showed an "Add another phone" code.
    PhoneLinkCreated,
    /// A phone link ended unused: the wrong number was picked.
    PhoneLinkRefused,
    /// A second phone enrolled its passkey through a phone link.
    PhoneLinked,
    /// Someone made their own account on `/join` (open registration).
    AccountJoined,
    /// An app was sent a back-channel logout token, and took it.
    AppLogoutSent,
    /// A try to send an app a back-channel logout token failed (it is
    /// retried with backoff, 8 tries in all).
    AppLogoutFailed,
}

impl AuditEvent {
    pub const ALL: [Self; 41] = [
        Self::LoginCreated,
        Self::LoginScanned,
        Self::LoginApproved,
        Self::LoginDenied,
        Self::LoginRedeemed,
        Self::LoginCancelled,
        Self::LoginExpired,
        Self::SignedIn,
        Self::SignInFailed,
        Self::SignedOut,
        Self::SessionRevoked,
        Self::AppSignedIn,
        Self::DeviceApproved,
        Self::DeviceDenied,
        Self::AppGrantRevoked,
        Self::PasskeyAdded,
        Self::PasskeyRemoved,
        Self::SignInChoicesChanged,
        Self::IdentityConfirmed,
        Self::AccountRemoved,
        Self::AccountReset,
        Self::AccountDisabled,
        Self::AccountEnabled,
        Self::AdminGranted,
        Self::AdminRevoked,
        Self::InviteCreated,
        Self::InviteUsed,
        Self::InviteRevoked,
        Self::AccountCreated,
        Self::AppAdded,
        Self::AppSecretRotated,
        Self::AppRemoved,
        Self::AdminTokenAdded,
        Self::AdminTokenRevoked,
        Self::SetupLinkCreated,
        Self::PhoneLinkCreated,
        Self::PhoneLinkRefused,
        Self::PhoneLinked,
        Self::AccountJoined,
        Self::AppLogoutSent,
        Self::AppLogoutFailed,
    ];

    /// The event a change of an attempt into `state` records; `None` for
    /// expiry, which is recorded once, when the attempt is purged.
    pub fn of_attempt_entering(state: LoginState) -> Option<Self> {
        match state {
            LoginState::Scanned => Some(Self::LoginScanned),
            LoginState::Approved => Some(Self::LoginApproved),
            LoginState::Denied => Some(Self::LoginDenied),
            LoginState::Redeemed => Some(Self::LoginRedeemed),
            LoginState::Cancelled => Some(Self::LoginCancelled),
            LoginState::Expired | LoginState::Pending => None,
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == raw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginCreated => "login_created",
            Self::LoginScanned => "login_scanned",
            Self::LoginApproved => "login_approved",
            Self::LoginDenied => "login_denied",
            Self::LoginRedeemed => "login_redeemed",
            Self::LoginCancelled => "login_cancelled",
            Self::LoginExpired => "login_expired",
            Self::SignedIn => "signed_in",
            Self::SignInFailed => "sign_in_failed",
            Self::SignedOut => "signed_out",
            Self::SessionRevoked => "session_revoked",
            Self::AppSignedIn => "app_signed_in",
            Self::DeviceApproved => "device_approved",
            Self::DeviceDenied => "device_denied",
            Self::AppGrantRevoked => "app_grant_revoked",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::SignInChoicesChanged => "sign_in_choices_changed",
            Self::IdentityConfirmed => "identity_confirmed",
            Self::AccountRemoved => "account_removed",
            Self::AccountReset => "account_reset",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::AdminGranted => "admin_granted",
            Self::AdminRevoked => "admin_revoked",
            Self::InviteCreated => "invite_created",
            Self::InviteUsed => "invite_used",
            Self::InviteRevoked => "invite_revoked",
            Self::AccountCreated => "account_created",
            Self::AppAdded => "app_added",
            Self::AppSecretRotated => "app_secret_rotated",
            Self::AppRemoved => "app_removed",
            Self::AdminTokenAdded => "admin_token_added",
            Self::AdminTokenRevoked => "admin_token_revoked",
            Self::SetupLinkCreated => "setup_link_created",
            Self::PhoneLinkCreated => "phone_link_created",
            Self::PhoneLinkRefused => "phone_link_refused",
            Self::PhoneLinked => "phone_linked",
            Self::AccountJoined => "account_joined",
            Self::AppLogoutSent => "app_logout_sent",
            Self::AppLogoutFailed => "app_logout_failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The row's number in the store (increasing); 0 until it is stored.
    pub id: i64,
    pub at: UnixMillis,
    pub event: AuditEvent,
    pub login_id: Option<String>,
    pub account_id: Option<i64>,
    pub session_id: Option<String>,
    /// The OpenID Connect client concerned, for the provider's events.
    pub client_id: Option<String>,
    pub ip: String,
    pub user_agent: String,
    /// Who acted when it was not the account itself (an administrator, an
    /// admin API token, the operator): [`Caller::actor`].
    pub actor: Option<String>,
}

impl AuditRecord {
    /// An event of `caller`'s, now.
    pub fn new(
        at: UnixMillis,
        event: AuditEvent,
        login_id: Option<LoginId>,
        account_id: Option<i64>,
        caller: &Caller,
    ) -> Self {
        Self {
            id: 0,
            at,
            event,
            login_id: login_id.map(|id| id.to_string()),
            account_id,
            session_id: None,
            client_id: None,
            ip: caller.ip_string(),
            user_agent: caller.user_agent.clone(),
            actor: caller.actor.clone(),
        }
    }

    /// An attempt that ran out, stamped with when it did.
    pub fn expired(attempt: &Attempt) -> Self {
        Self {
            id: 0,
            at: attempt.expires_at,
            event: AuditEvent::LoginExpired,
            login_id: Some(attempt.id.to_string()),
            account_id: attempt.scanner.as_ref().map(|s| s.account_id),
            session_id: None,
            client_id: None,
            ip: attempt
                .requester
                .ip
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            user_agent: attempt.requester.user_agent.clone(),
            actor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_round_trip() {
        for event in AuditEvent::ALL {
            assert_eq!(AuditEvent::parse(event.as_str()), Some(event));
        }
        assert_eq!(AuditEvent::parse("nonsense"), None);
    }
}
