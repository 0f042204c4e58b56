//! The RFC 8628 device authorization grant: a TV or a CLI asks for a
//! device code and a user code, shows the QR of its verification URL, and
//! polls the token endpoint; the phone that opens the URL sees the code,
//! the client and where the request came from, and approves or denies.

use serde::Serialize;

use super::{kinds, parse, seconds, to_json, ClientCredentials, OidcError, OidcService};
use crate::{
    domain::{
        audit::AuditEvent,
        caller::{same_network, Caller, ShownRequester},
        oidc::{
            granted_scopes, lifetimes, secret_digest, DeviceAuthorization, DeviceState,
            RequestOrigin, UserCode,
        },
        passkey::ShownApproval,
        secret::Secret,
        time::now_millis,
    },
    services::{
        accounts::CurrentSession,
        limits::{gate, ip_key},
    },
    storage::{ProviderRecord, StoreError},
};

/// The device authorization response (RFC 8628 §3.2).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// What the phone is shown of a device request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequestView {
    pub user_code: String,
    pub client_name: String,
    pub browser: String,
    pub os: String,
    pub ip: String,
    pub same_network: bool,
    pub age_s: u64,
    pub state: DeviceRequestState,
}

impl DeviceRequestView {
    /// What an approval of it signs with a passkey.
    pub fn shown(&self) -> ShownApproval<'_> {
        ShownApproval {
            subject: &self.user_code,
            number: None,
            browser: &self.browser,
            os: &self.os,
            ip: &self.ip,
            client: Some(&self.client_name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequestState {
    Pending,
    Approved,
    Denied,
}

/// Where the phone opens the device's QR.
pub const VERIFICATION_PATH: &str = "/device";

#[derive(Serialize, serde::Deserialize)]
struct UserCodeEntry {
    device_key: String,
}

impl OidcService {
    /// `POST /oauth2/device_authorization`.
    pub async fn device_authorize(
        &self,
        credentials: &ClientCredentials,
        scope: Option<&str>,
        caller: &Caller,
    ) -> Result<DeviceAuthorizationResponse, OidcError> {
        self.limits.token.check(&ip_key(caller.ip)).await?;
        let client = self.authenticate_client(credentials).await?;
        let scopes = granted_scopes(scope.unwrap_or("openid")).ok_or(OidcError::InvalidScope)?;
        let now = now_millis();
        let device_code = Secret::new_random().encode();
        let device_key = secret_digest(&device_code);
        // A user code is 34 bits: a collision with a live one is rare, and
        // simply drawn again.
        let mut user_code = UserCode::new_random();
        let entry = to_json(&UserCodeEntry {
            device_key: device_key.clone(),
        })?;
        let expires_at = now + lifetimes::DEVICE_CODE_MS;
        let mut tries = 0;
        loop {
            match self
                .store
                .insert(
                    kinds::USER_CODE,
                    user_code.as_key(),
                    &entry,
                    expires_at,
                    now,
                )
                .await
            {
                Ok(()) => break,
                Err(StoreError::Duplicate) if tries < 5 => {
                    tries += 1;
                    user_code = UserCode::new_random();
                }
                Err(err) => return Err(err.into()),
            }
        }
        let device = DeviceAuthorization {
            client_id: client.id.clone(),
            scopes,
            user_code: user_code.clone(),
            origin: RequestOrigin::from(caller),
            state: DeviceState::Pending,
            created_at: now,
            expires_at,
            interval_s: lifetimes::DEVICE_POLL_INTERVAL_S,
            last_poll_at: None,
        };
        self.store
            .insert(
                kinds::DEVICE,
                &device_key,
                &to_json(&device)?,
                expires_at + lifetimes::DEVICE_RETENTION_MS,
                now,
            )
            .await?;
        let verification_uri = format!("{}{VERIFICATION_PATH}", self.issuer);
        tracing::info!(client = %client.id, "device authorization started");
        Ok(DeviceAuthorizationResponse {
            device_code,
            verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
            verification_uri,
            user_code: user_code.to_string(),
            expires_in: seconds(lifetimes::DEVICE_CODE_MS),
            interval: lifetimes::DEVICE_POLL_INTERVAL_S,
        })
    }

    pub(super) async fn device(
        &self,
        key: &str,
    ) -> Result<Option<(DeviceAuthorization, ProviderRecord)>, StoreError> {
        self.load(kinds::DEVICE, key).await
    }

    /// The device request behind a user code, for the signed-in phone.
    /// Every lookup counts against the address's and the account's limits,
    /// so that guessing codes gets nowhere.
    /// The device request a typed code names, counted against the
    /// guessing limit (RFC 8628 §5.1).
    async fn device_by_user_code(
        &self,
        raw: &str,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<(String, DeviceAuthorization, ProviderRecord), OidcError> {
        gate([
            self.limits.user_code_ip.of(&ip_key(caller.ip)),
            self.limits.user_code_account.of(&current.account.id),
        ])
        .await?;
        self.find_device(raw).await
    }

    /// The device request a code names, uncounted: for reading it again
    /// within one counted call (a compare-and-set retry).
    async fn find_device(
        &self,
        raw: &str,
    ) -> Result<(String, DeviceAuthorization, ProviderRecord), OidcError> {
        let user_code = UserCode::parse(raw).ok_or(OidcError::UnknownUserCode)?;
        let now = now_millis();
        let entry = self
            .store
            .get(kinds::USER_CODE, user_code.as_key(), now)
            .await?
            .and_then(|r| parse::<UserCodeEntry>(&r))
            .ok_or(OidcError::UnknownUserCode)?;
        let (device, record) = self
            .device(&entry.device_key)
            .await?
            .filter(|(d, _)| d.user_code == user_code && now < d.expires_at)
            .ok_or(OidcError::UnknownUserCode)?;
        Ok((entry.device_key, device, record))
    }

    /// What the phone shows for a user code.
    pub async fn device_request(
        &self,
        raw_user_code: &str,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<DeviceRequestView, OidcError> {
        let (_, device, _) = self
            .device_by_user_code(raw_user_code, current, caller)
            .await?;
        self.view(&device, caller).await
    }

    /// The browser's passkey options for approving the device request
    /// (the challenge is derived from what the phone shows).
    pub async fn device_approval_options(
        &self,
        raw_user_code: &str,
        current: &CurrentSession,
        caller: &Caller,
    ) -> Result<webauthn_rs::prelude::RequestChallengeResponse, OidcError> {
        let (_, device, _) = self
            .device_by_user_code(raw_user_code, current, caller)
            .await?;
        let view = self.view(&device, caller).await?;
        Ok(self
            .passkeys
            .approval_options(current.account.id, &view.shown())
            .await?)
    }

    /// Whether approving a device request needs a passkey.
    pub async fn device_needs_passkey(
        &self,
        account_id: i64,
        request: &DeviceRequestView,
    ) -> Result<bool, StoreError> {
        self.passkeys
            .approval_needs_passkey(account_id, request.same_network)
            .await
    }

    async fn view(
        &self,
        device: &DeviceAuthorization,
        phone: &Caller,
    ) -> Result<DeviceRequestView, OidcError> {
        let client_name = self
            .client(&device.client_id)
            .await?
            .map(|c| c.name)
            .ok_or(OidcError::UnknownUserCode)?;
        let shown = ShownRequester::of(&device.origin.user_agent, device.origin.ip);
        Ok(DeviceRequestView {
            user_code: device.user_code.to_string(),
            client_name,
            browser: shown.browser,
            os: shown.os,
            ip: shown.ip,
            same_network: same_network(device.origin.ip, phone.ip),
            age_s: now_millis().saturating_sub(device.created_at) / 1000,
            state: match device.state {
                DeviceState::Pending => DeviceRequestState::Pending,
                DeviceState::Approved { .. } | DeviceState::Done => DeviceRequestState::Approved,
                DeviceState::Denied => DeviceRequestState::Denied,
            },
        })
    }

    /// The phone approves (which is also the consent) or denies. Only a
    /// pending request changes; deciding again is answered with how it
    /// stands.
    pub async fn decide_device(
        &self,
        raw_user_code: &str,
        approve: bool,
        current: &CurrentSession,
        caller: &Caller,
        assertion: Option<&str>,
    ) -> Result<DeviceRequestView, OidcError> {
        // Counted once against the guessing limit, however many retries.
        let mut found = self
            .device_by_user_code(raw_user_code, current, caller)
            .await?;
        if approve && found.1.state == DeviceState::Pending {
            // What was shown (client, origin) never changes: checked once.
            let view = self.view(&found.1, caller).await?;
            self.passkeys
                .authorize_approval(
                    current.account.id,
                    &view.shown(),
                    view.same_network,
                    assertion,
                )
                .await?;
        }
        for _ in 0..8 {
            let (key, device, record) = found;
            if device.state != DeviceState::Pending {
                return self.view(&device, caller).await;
            }
            let decided = DeviceAuthorization {
                state: if approve {
                    DeviceState::Approved {
                        account_id: current.account.id,
                    }
                } else {
                    DeviceState::Denied
                },
                ..device.clone()
            };
            let now = now_millis();
            if self
                .store
                .replace(
                    kinds::DEVICE,
                    &key,
                    record.version,
                    &to_json(&decided)?,
                    record.expires_at,
                    now,
                )
                .await?
            {
                if approve {
                    self.remember_consent(current.account.id, &device.client_id)
                        .await?;
                }
                let event = if approve {
                    AuditEvent::DeviceApproved
                } else {
                    AuditEvent::DeviceDenied
                };
                self.audit
                    .record_app(event, Some(current.account.id), &device.client_id, caller);
                tracing::info!(client = %device.client_id, account = %current.account.username, approve, "device request decided");
                return self.view(&decided, caller).await;
            }
            // A poll wrote meanwhile: read again.
            found = self.find_device(raw_user_code).await?;
        }
        Err(StoreError::Unavailable("device request kept changing".into()).into())
    }
}
