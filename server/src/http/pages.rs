//! The Leptos pages' port ([`Backend`]): what their server functions may
//! do, through the same services the JSON API uses. What a page shows for
//! a refusal is decided here, from the services' errors.

use app::{
    api::{LoginState, User},
    backend::Backend,
    server_fns::{AccountView, AppConsent, DeviceRequest, DeviceView, PhoneLoginView},
};
use async_trait::async_trait;
use axum::http::{request::Parts, HeaderValue};
use leptos::prelude::ServerFnError;

use super::{
    cookies::{clear_session_cookie, session_cookie},
    error::ApiError,
    extract::{caller, current_session},
    state::AppState,
    views,
};
use crate::{
    domain::{
        attempt::{LoginId, TransitionError},
        caller::Caller,
        time::{now_millis, rfc3339},
    },
    services::{
        accounts::{AccountError, CurrentSession},
        logins::LoginError,
        oidc::{
            device::{DeviceRequestState, DeviceRequestView},
            OidcError,
        },
    },
};

/// Internal causes are logged; the page gets only the machine code.
fn page_error(err: impl Into<ApiError>) -> ServerFnError {
    let err = err.into();
    err.log_cause();
    ServerFnError::new(err.code())
}

fn header_string(value: HeaderValue) -> String {
    value.to_str().unwrap_or_default().to_owned()
}

impl AppState {
    fn caller(&self, request: &Parts) -> Caller {
        caller(request, &self.trusted_proxies)
    }

    async fn signed_in(&self, request: &Parts) -> Result<Option<CurrentSession>, ServerFnError> {
        current_session(self, &request.headers)
            .await
            .map_err(page_error)
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

/// The phone's view of a device request.
fn device_view(me: &CurrentSession, request: DeviceRequestView) -> DeviceView {
    match request.state {
        DeviceRequestState::Approved => DeviceView::Approved {
            client: request.client_name,
        },
        DeviceRequestState::Denied => DeviceView::Denied {
            client: request.client_name,
        },
        DeviceRequestState::Pending => DeviceView::Confirm {
            me: me.account.to_api(),
            request: DeviceRequest {
                user_code: request.user_code,
                client: request.client_name,
                browser: request.browser,
                os: request.os,
                ip: request.ip,
                same_network: request.same_network,
                age_s: request.age_s,
            },
        },
    }
}

/// Refusals the device page shows; others are errors.
fn device_page(
    me: &CurrentSession,
    result: Result<DeviceRequestView, OidcError>,
) -> Result<DeviceView, ServerFnError> {
    match result {
        Ok(request) => Ok(device_view(me, request)),
        Err(OidcError::UnknownUserCode) => Ok(DeviceView::Unknown),
        Err(OidcError::RateLimited(_)) => Ok(DeviceView::TooMany),
        Err(OidcError::Store(e)) => Err(page_error(e)),
        Err(e) => Err(page_error(ApiError::BadRequest(e.to_string()))),
    }
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
                LoginState::Scanned => PhoneLoginView::Confirm {
                    me: current.account.to_api(),
                    scanned: views::scanned(&attempt, &caller, now_millis()),
                },
                LoginState::Approved => PhoneLoginView::Approved,
                state => PhoneLoginView::Finished { state },
            }),
            Err(LoginError::NotFound) => Ok(PhoneLoginView::Unknown),
            Err(LoginError::Transition(TransitionError::ScannedByOther)) => {
                Ok(PhoneLoginView::TakenByOther)
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
    ) -> Result<(), ServerFnError> {
        let Some((current, id)) = self.decision(request, id).await? else {
            return Ok(());
        };
        let caller = self.caller(request);
        let logins = &self.services.logins;
        shown_by_page(logins.approve(id, &current, &caller, match_code).await)
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
        let recent = accounts
            .recent_sign_ins(&current)
            .await
            .map_err(page_error)?;
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
        device_page(&current, found)
    }

    async fn decide_device(
        &self,
        request: &Parts,
        user_code: &str,
        approve: bool,
    ) -> Result<DeviceView, ServerFnError> {
        let Some(current) = self.signed_in(request).await? else {
            return Ok(DeviceView::SignInNeeded);
        };
        let caller = self.caller(request);
        let decided = self
            .services
            .oidc
            .decide_device(user_code, approve, &current, &caller)
            .await;
        device_page(&current, decided)
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
}
