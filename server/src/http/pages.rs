//! The Leptos pages' port ([`Backend`]): what their server functions may
//! do, through the same services the JSON API uses. What a page shows for
//! a refusal is decided here, from the services' errors.

use app::{
    api::{LoginState, User},
    backend::Backend,
    server_fns::{
        AccountView, AppConsent, ConfirmView, ConfirmWith, DeviceRequest, DeviceView, InviteView,
        LinkView, PasskeyCeremony, PasskeyView, PhoneLoginView, RemovedPasskeyView,
    },
};
use async_trait::async_trait;
use axum::http::{request::Parts, HeaderValue};
use leptos::prelude::ServerFnError;

use super::{
    cookies::{clear_session_cookie, link_claim_cookie, link_claims, session_cookie},
    error::ApiError,
    extract::{caller, current_session},
    state::AppState,
    views,
};
use crate::{
    domain::{
        attempt::{LoginId, TransitionError},
        caller::Caller,
        credentials::ProofNeeded,
        time::{now_millis, rfc3339},
    },
    services::{
        accounts::{AccountError, CurrentSession},
        invites::{InviteKind, Registration},
        logins::LoginError,
        oidc::{
            device::{DeviceRequestState, DeviceRequestView},
            OidcError,
        },
        passkeys::{Ceremony, Confirmation, LinkProgress, PasskeyError},
    },
};

/// Internal causes are logged; the page gets only the machine code, with
/// its status (a refused passkey is a 403, not a 500).
pub(super) fn page_error(err: impl Into<ApiError>) -> ServerFnError {
    let err = err.into();
    err.log_cause();
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(err.status());
    }
    ServerFnError::new(err.code())
}

/// How `/m` offers to confirm a credential change.
pub(super) fn confirm_view(confirmation: &Confirmation) -> ConfirmView {
    ConfirmView {
        with: match confirmation.needed {
            ProofNeeded::Passkey => ConfirmWith::Passkey,
            ProofNeeded::Password => ConfirmWith::Password,
            ProofNeeded::None | ProofNeeded::Impossible => ConfirmWith::Nothing,
        },
        fresh_until: confirmation.fresh_until.map(rfc3339),
    }
}

fn header_string(value: HeaderValue) -> String {
    value.to_str().unwrap_or_default().to_owned()
}

impl AppState {
    fn caller(&self, request: &Parts) -> Caller {
        caller(request, &self.trusted_proxies)
    }

    /// The phone link this phone claimed, if it holds one.
    fn link_claim(&self, request: &Parts) -> Option<String> {
        link_claims(&request.headers, self.public_url.is_https())
            .into_iter()
            .next()
    }

    async fn signed_in(&self, request: &Parts) -> Result<Option<CurrentSession>, ServerFnError> {
        current_session(self, &request.headers)
            .await
            .map_err(page_error)
    }

    /// The signed-in phone, or the `not_signed_in` refusal (calls the pages
    /// make only when signed in).
    async fn signed_in_or_refuse(&self, request: &Parts) -> Result<CurrentSession, ServerFnError> {
        self.signed_in(request)
            .await?
            .ok_or_else(|| page_error(ApiError::NotSignedIn))
    }

    /// The signed-in phone and the attempt id of a decision form; `None`
    /// when either is missing (the page then shows where things stand).
    async fn decision(
        &self,
        request: &Parts,
        id: &str,
    ) -> Result<Option<(CurrentSession, LoginId)>, ServerFnError> {
        let current = self.signed_in(request).await?;
        Ok(current.zip(id.parse().ok()))
    }
}

impl AppState {
    /// The phone's view of a device request.
    async fn device_view(
        &self,
        me: &CurrentSession,
        request: DeviceRequestView,
    ) -> Result<DeviceView, ServerFnError> {
        Ok(match request.state {
            DeviceRequestState::Approved => DeviceView::Approved {
                client: request.client_name,
            },
            DeviceRequestState::Denied => DeviceView::Denied {
                client: request.client_name,
            },
            DeviceRequestState::Pending => {
                let needs_passkey = self
                    .services
                    .oidc
                    .device_needs_passkey(me.account.id, &request)
                    .await
                    .map_err(page_error)?;
                DeviceView::Confirm {
                    me: me.account.to_api(),
                    request: DeviceRequest {
                        user_code: request.user_code,
                        client: request.client_name,
                        browser: request.browser,
                        os: request.os,
                        ip: request.ip,
                        same_network: request.same_network,
                        age_s: request.age_s,
                        needs_passkey,
                    },
                }
            }
        })
    }

    /// Refusals the device page shows; others are errors.
    async fn device_page(
        &self,
        me: &CurrentSession,
        result: Result<DeviceRequestView, OidcError>,
    ) -> Result<DeviceView, ServerFnError> {
        match result {
            Ok(request) => self.device_view(me, request).await,
            Err(OidcError::UnknownUserCode) => Ok(DeviceView::Unknown),
            Err(OidcError::RateLimited(_)) => Ok(DeviceView::TooMany),
            Err(e) => Err(oidc_page_error(e)),
        }
    }
}

/// A device-flow failure the page does not show as a view.
fn oidc_page_error(err: OidcError) -> ServerFnError {
    match err {
        OidcError::Store(e) => page_error(e),
        OidcError::Passkey(e) => page_error(e),
        e => page_error(ApiError::BadRequest(e.to_string())),
    }
}

/// A ceremony's options for the browser: the `publicKey` member, as JSON.
fn ceremony<T: serde::Serialize>(ceremony: Ceremony<T>) -> Result<PasskeyCeremony, ServerFnError> {
    Ok(PasskeyCeremony {
        options: options_json(&ceremony.options)?,
        ceremony: ceremony.ceremony,
    })
}

fn options_json<T: serde::Serialize>(options: T) -> Result<String, ServerFnError> {
    serde_json::to_string(&options).map_err(|e| page_error(ApiError::internal(e)))
}

/// Refusals the phone page shows from the attempt's state; others are errors.
fn shown_by_page<T>(result: Result<T, LoginError>) -> Result<(), ServerFnError> {
    match result {
        Ok(_) | Err(LoginError::Transition(_) | LoginError::NotFound) => Ok(()),
        Err(e) => Err(page_error(e)),
    }
}

#[async_trait]
impl Backend for AppState {
    fn passkeys_available(&self) -> bool {
        self.services.passkeys.available()
    }

    fn registration_open(&self) -> bool {
        self.services.passkeys.registration() == Registration::Open
    }

    async fn join(
        &self,
        request: &Parts,
        username: &str,
        display_name: &str,
    ) -> Result<String, ServerFnError> {
        let token = self
            .services
            .passkeys
            .start_join(username, display_name, &self.caller(request))
            .await
            .map_err(page_error)?;
        Ok(token.encode())
    }

    async fn start_link(&self, request: &Parts) -> Result<String, ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        let (token, _) = self
            .services
            .passkeys
            .start_link(&current, &self.caller(request))
            .await
            .map_err(page_error)?;
        Ok(token.encode())
    }

    async fn link(&self, request: &Parts, token: &str) -> Result<LinkView, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(LinkView::SignInNeeded);
        };
        match self.services.passkeys.link_progress(&current, token).await {
            Ok(LinkProgress::Waiting) => Ok(LinkView::Waiting {
                url: format!("{}/invite/{token}", self.public_url.as_str()),
            }),
            Ok(LinkProgress::Scanned { choices }) => Ok(LinkView::Scanned {
                choices: choices.to_vec(),
            }),
            Ok(LinkProgress::Matched) => Ok(LinkView::Matched),
            Err(PasskeyError::InviteGone) => Ok(LinkView::Gone),
            Err(e) => Err(page_error(e)),
        }
    }

    async fn pick_link_number(
        &self,
        request: &Parts,
        token: &str,
        number: u8,
    ) -> Result<bool, ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        self.services
            .passkeys
            .pick_link_number(&current, token, number, &self.caller(request))
            .await
            .map_err(page_error)
    }

    async fn current_user(&self, request: &Parts) -> Result<Option<User>, ServerFnError> {
        Ok(self.signed_in(request).await?.map(|c| c.account.to_api()))
    }

    async fn phone_login(
        &self,
        request: &Parts,
        id: &str,
    ) -> Result<PhoneLoginView, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(PhoneLoginView::SignInNeeded);
        };
        let Ok(id) = id.parse::<LoginId>() else {
            return Ok(PhoneLoginView::Unknown);
        };
        let caller = self.caller(request);
        match self.services.logins.scan(id, &current, &caller).await {
            Ok(attempt) => Ok(match attempt.state {
                LoginState::Scanned => {
                    let mut scanned = views::scanned(&attempt, &caller, now_millis());
                    scanned.needs_passkey = self
                        .services
                        .logins
                        .approval_needs_passkey(&attempt, current.account.id, &caller)
                        .await
                        .map_err(page_error)?;
                    PhoneLoginView::Confirm {
                        me: current.account.to_api(),
                        scanned,
                    }
                }
                LoginState::Approved => PhoneLoginView::Approved,
                state => PhoneLoginView::Finished { state },
            }),
            Err(LoginError::NotFound) => Ok(PhoneLoginView::Unknown),
            Err(LoginError::Transition(TransitionError::ScannedByOther)) => {
                Ok(PhoneLoginView::TakenByOther)
            }
            Err(LoginError::Transition(TransitionError::ForAnotherAccount)) => {
                Ok(PhoneLoginView::ForAnotherAccount)
            }
            Err(LoginError::Transition(TransitionError::Finished(state))) => {
                Ok(PhoneLoginView::Finished { state })
            }
            Err(e) => Err(page_error(e)),
        }
    }

    async fn approve(
        &self,
        request: &Parts,
        id: &str,
        match_code: u8,
        passkey: Option<&str>,
    ) -> Result<(), ServerFnError> {
        let Some((current, id)) = self.decision(request, id).await? else {
            return Ok(());
        };
        let caller = self.caller(request);
        let logins = &self.services.logins;
        shown_by_page(
            logins
                .approve(id, &current, &caller, match_code, passkey)
                .await,
        )
    }

    async fn approval_options(
        &self,
        request: &Parts,
        id: &str,
        match_code: u8,
    ) -> Result<String, ServerFnError> {
        let Some((current, id)) = self.decision(request, id).await? else {
            return Err(page_error(ApiError::NotSignedIn));
        };
        let options = self
            .services
            .logins
            .approval_options(id, &current, match_code)
            .await
            .map_err(page_error)?;
        options_json(options)
    }

    async fn deny(&self, request: &Parts, id: &str) -> Result<(), ServerFnError> {
        let Some((current, id)) = self.decision(request, id).await? else {
            return Ok(());
        };
        let caller = self.caller(request);
        shown_by_page(self.services.logins.deny(id, &current, &caller).await)
    }

    async fn sign_in(
        &self,
        request: &Parts,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, ServerFnError> {
        let caller = self.caller(request);
        let accounts = &self.services.accounts;
        match accounts.sign_in(username, password, &caller).await {
            Ok((token, _)) => Ok(Some(header_string(session_cookie(
                &token,
                self.public_url.is_https(),
            )))),
            // A refused or throttled sign-in shows the same message.
            Err(
                AccountError::InvalidCredentials
                | AccountError::InvalidInput(_)
                | AccountError::RateLimited(_),
            ) => Ok(None),
            Err(e) => Err(page_error(e)),
        }
    }

    async fn sign_out(&self, request: &Parts) -> Result<String, ServerFnError> {
        if let Some(current) = self.signed_in(request).await? {
            let caller = self.caller(request);
            self.services
                .accounts
                .sign_out(&current, &caller)
                .await
                .map_err(page_error)?;
        }
        Ok(header_string(clear_session_cookie(
            self.public_url.is_https(),
        )))
    }

    async fn account(&self, request: &Parts) -> Result<Option<AccountView>, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(None);
        };
        let accounts = &self.services.accounts;
        let sessions = accounts.sessions(&current).await.map_err(page_error)?;
        let (recent, seen_before) = accounts
            .recent_sign_ins(&current)
            .await
            .map_err(page_error)?;
        let passkeys = &self.services.passkeys;
        let settings = passkeys
            .settings(current.account.id)
            .await
            .map_err(page_error)?;
        let confirmation = passkeys.confirmation(&current).await.map_err(page_error)?;
        Ok(Some(AccountView {
            user: current.account.to_api(),
            sessions: sessions
                .iter()
                .map(|s| views::session_info(s, &current.session.id))
                .collect(),
            recent: recent.into_iter().map(views::recent_sign_in).collect(),
            apps: self
                .services
                .oidc
                .consents(current.account.id)
                .await
                .map_err(page_error)?
                .into_iter()
                .map(|c| AppConsent {
                    client_id: c.client_id,
                    name: c.client_name,
                    granted_at: rfc3339(c.granted_at),
                })
                .collect(),
            site: self.public_url.as_str().to_owned(),
            passkeys: passkeys
                .list(current.account.id)
                .await
                .map_err(page_error)?
                .into_iter()
                .map(|p| PasskeyView {
                    id: p.id,
                    name: p.name,
                    new: p.created_at > seen_before,
                    created_at: rfc3339(p.created_at),
                    last_used_at: p.last_used_at.map(rfc3339),
                })
                .collect(),
            passkeys_available: passkeys.available(),
            password_off: settings.password_off,
            approve_with_passkey: settings.approve_with_passkey,
            removed_passkeys: settings
                .removed
                .iter()
                .filter(|r| r.removed_at > seen_before)
                .map(|r| RemovedPasskeyView {
                    name: r.name.clone(),
                    removed_at: rfc3339(r.removed_at),
                })
                .collect(),
            confirm: confirm_view(&confirmation),
        }))
    }

    async fn revoke(&self, request: &Parts, session_id: &str) -> Result<(), ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(());
        };
        let caller = self.caller(request);
        match self
            .services
            .accounts
            .revoke(&current, session_id, &caller)
            .await
        {
            Ok(()) | Err(AccountError::SessionNotFound) => Ok(()),
            Err(e) => Err(page_error(e)),
        }
    }

    async fn authorization_client(
        &self,
        request_id: &str,
    ) -> Result<Option<String>, ServerFnError> {
        self.services
            .oidc
            .request_client_name(request_id)
            .await
            .map_err(page_error)
    }

    async fn device_request(
        &self,
        request: &Parts,
        user_code: &str,
    ) -> Result<DeviceView, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(DeviceView::SignInNeeded);
        };
        if user_code.trim().is_empty() {
            return Ok(DeviceView::EnterCode);
        }
        let caller = self.caller(request);
        let found = self
            .services
            .oidc
            .device_request(user_code, &current, &caller)
            .await;
        self.device_page(&current, found).await
    }

    async fn decide_device(
        &self,
        request: &Parts,
        user_code: &str,
        approve: bool,
        passkey: Option<&str>,
    ) -> Result<DeviceView, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(DeviceView::SignInNeeded);
        };
        let caller = self.caller(request);
        let decided = self
            .services
            .oidc
            .decide_device(user_code, approve, &current, &caller, passkey)
            .await;
        self.device_page(&current, decided).await
    }

    async fn device_approval_options(
        &self,
        request: &Parts,
        user_code: &str,
    ) -> Result<String, ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        let options = self
            .services
            .oidc
            .device_approval_options(user_code, &current, &self.caller(request))
            .await
            .map_err(oidc_page_error)?;
        options_json(options)
    }

    async fn passkey_registration(
        &self,
        request: &Parts,
    ) -> Result<PasskeyCeremony, ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        let started = self
            .services
            .passkeys
            .start_registration(&current)
            .await
            .map_err(page_error)?;
        ceremony(started)
    }

    async fn add_passkey(
        &self,
        request: &Parts,
        ceremony: &str,
        name: &str,
        credential: &str,
    ) -> Result<(), ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        self.services
            .passkeys
            .finish_registration(&current, ceremony, name, credential, &self.caller(request))
            .await
            .map_err(page_error)?;
        Ok(())
    }

    async fn remove_passkey(&self, request: &Parts, id: &str) -> Result<(), ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(());
        };
        let caller = self.caller(request);
        match self.services.passkeys.remove(&current, id, &caller).await {
            Ok(()) | Err(PasskeyError::NotFound) => Ok(()),
            Err(e) => Err(page_error(e)),
        }
    }

    async fn set_sign_in_choices(
        &self,
        request: &Parts,
        password: bool,
        approve_with_passkey: bool,
    ) -> Result<(), ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        self.services
            .passkeys
            .set_choices(
                &current,
                password,
                approve_with_passkey,
                &self.caller(request),
            )
            .await
            .map_err(page_error)?;
        Ok(())
    }

    async fn confirm_options(&self, request: &Parts) -> Result<PasskeyCeremony, ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        let started = self
            .services
            .passkeys
            .confirm_options(&current)
            .await
            .map_err(page_error)?;
        ceremony(started)
    }

    async fn confirm_with_passkey(
        &self,
        request: &Parts,
        ceremony: &str,
        credential: &str,
    ) -> Result<(), ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        self.services
            .passkeys
            .confirm_with_passkey(&current, ceremony, credential, &self.caller(request))
            .await
            .map_err(page_error)
    }

    async fn confirm_with_password(
        &self,
        request: &Parts,
        password: &str,
    ) -> Result<(), ServerFnError> {
        let current = self.signed_in_or_refuse(request).await?;
        self.services
            .passkeys
            .confirm_with_password(&current, password, &self.caller(request))
            .await
            .map_err(page_error)
    }

    async fn passkey_sign_in_options(
        &self,
        request: &Parts,
    ) -> Result<PasskeyCeremony, ServerFnError> {
        let started = self
            .services
            .passkeys
            .start_sign_in(&self.caller(request))
            .await
            .map_err(page_error)?;
        ceremony(started)
    }

    async fn passkey_sign_in(
        &self,
        request: &Parts,
        ceremony: &str,
        credential: &str,
    ) -> Result<String, ServerFnError> {
        let (token, _) = self
            .services
            .passkeys
            .finish_sign_in(ceremony, credential, &self.caller(request))
            .await
            .map_err(page_error)?;
        Ok(header_string(session_cookie(
            &token,
            self.public_url.is_https(),
        )))
    }

    async fn withdraw_app(&self, request: &Parts, client_id: &str) -> Result<(), ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(());
        };
        self.services
            .oidc
            .withdraw_consent(current.account.id, client_id, &self.caller(request))
            .await
            .map_err(page_error)?;
        Ok(())
    }

    async fn invite(&self, request: &Parts, token: &str) -> Result<InviteView, ServerFnError> {
        let passkeys = &self.services.passkeys;
        let claim = self.link_claim(request);
        match passkeys
            .open_invite(token, claim.as_deref(), &self.caller(request))
            .await
        {
            Ok(opened) => {
                if let Some(secret) = &opened.new_claim {
                    set_cookie_header(link_claim_cookie(secret, self.public_url.is_https()));
                }
                let display_name = opened.invitee.display_name().to_owned();
                let username = opened.invitee.username().to_owned();
                let site = site_name(self.public_url.as_str());
                Ok(match (opened.kind, opened.link_number) {
                    (InviteKind::Link, Some(number)) => InviteView::LinkNumber {
                        number,
                        display_name,
                    },
                    (InviteKind::Link, None) => InviteView::LinkReady {
                        display_name,
                        username,
                        site,
                    },
                    _ => InviteView::Ready {
                        display_name,
                        username,
                        site,
                        passkeys: passkeys.available(),
                    },
                })
            }
            Err(PasskeyError::InviteGone | PasskeyError::RegistrationClosed) => {
                Ok(InviteView::Gone)
            }
            Err(PasskeyError::RateLimited(_)) => Ok(InviteView::TooMany),
            Err(e) => Err(page_error(e)),
        }
    }

    async fn invite_passkey_options(
        &self,
        request: &Parts,
        token: &str,
    ) -> Result<PasskeyCeremony, ServerFnError> {
        let started = self
            .services
            .passkeys
            .start_enrollment(
                token,
                self.link_claim(request).as_deref(),
                &self.caller(request),
            )
            .await
            .map_err(page_error)?;
        ceremony(started)
    }

    async fn enroll_passkey(
        &self,
        request: &Parts,
        token: &str,
        ceremony: &str,
        name: &str,
        credential: &str,
    ) -> Result<String, ServerFnError> {
        let (session, _) = self
            .services
            .passkeys
            .finish_enrollment(
                token,
                self.link_claim(request).as_deref(),
                ceremony,
                name,
                credential,
                &self.caller(request),
            )
            .await
            .map_err(page_error)?;
        Ok(header_string(session_cookie(
            &session,
            self.public_url.is_https(),
        )))
    }

    async fn enroll_password(
        &self,
        request: &Parts,
        token: &str,
        password: &str,
    ) -> Result<String, ServerFnError> {
        let (session, _) = self
            .services
            .passkeys
            .enroll_with_password(token, password, &self.caller(request))
            .await
            .map_err(page_error)?;
        Ok(header_string(session_cookie(
            &session,
            self.public_url.is_https(),
        )))
    }
}

/// Adds a Set-Cookie header to the page's response.
fn set_cookie_header(value: HeaderValue) {
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.append_header(axum::http::header::SET_COOKIE, value);
    }
}

/// The site as the invite page names it: the public URL's host (and port).
fn site_name(public_url: &str) -> String {
    url::Url::parse(public_url)
        .ok()
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| public_url.to_owned())
}
